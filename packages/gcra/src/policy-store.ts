import { EventEmitter } from "node:events";
import { FAILURE_KINDS, type FailureKind, type GcraStoreError, toStoreError } from "./errors.ts";
import { type DecisionSource, decision, type GcraDecision, monotonicMicros } from "./gcra.ts";
import { GcraLimit, requireCost, requireKey } from "./limit.ts";
import { MemoryStore } from "./memory-store.ts";
import type { GcraStore } from "./store.ts";

/**
 * What to answer while the store fails: `open` allows every request, `closed` denies every
 * request, `fallback` decides with a per-process {@link MemoryStore} (exact per process; with N
 * processes a client may get up to N times its limit while Valkey is down).
 */
export type FailurePolicy = "open" | "closed" | "fallback";

/** Who answers right now: the store, or the failure policy. */
export type PolicyMode = "store" | FailurePolicy;

/** Options of {@link PolicyStore}. */
export interface PolicyStoreOptions {
  /** What to answer while the store fails. */
  readonly policy: FailurePolicy;
  /** Consecutive failures that switch to the policy. Default 1. */
  readonly failureThreshold?: number;
  /** First probe delay after switching, ms; doubles (with ±20 % jitter) up to `maxProbeDelayMs`. Default 50. */
  readonly probeDelayMs?: number;
  /** Longest probe delay, ms. Default 2000. */
  readonly maxProbeDelayMs?: number;
  /** `closed` policy: the `retryAfter` (µs) of its denials. Default 1 000 000 (1 s). */
  readonly closedRetryAfterUs?: number;
  /** `fallback` policy: the per-process memory store to decide with. Default: one holding up to 100 000 keys. */
  readonly fallback?: MemoryStore;
  /** Monotonic clock in integer µs. Default `performance.now()` in µs. */
  readonly clock?: () => number;
}

/** Events of {@link PolicyStore}. */
export interface PolicyStoreEvents {
  /** A store call failed (the policy answered instead). */
  failure: [error: GcraStoreError];
  /** Who answers changed: `store` when healthy again, the policy's name when failing. */
  mode: [mode: PolicyMode, previous: PolicyMode];
  /** A probe of the failing store finished. */
  probe: [ok: boolean, error: GcraStoreError | undefined];
}

/** Counters of {@link PolicyStore}, cumulative since construction. */
export interface PolicyStoreStats {
  /** Who answers now. */
  readonly mode: PolicyMode;
  /** Whether the store answers (mode `store`). */
  readonly healthy: boolean;
  /** Decisions by who answered (`deny-cache` is counted by {@link DenyCacheStore}). */
  readonly decisions: Readonly<Record<Exclude<DecisionSource, "deny-cache">, number>>;
  /** Store failures by kind (each failed call, and each failed probe). */
  readonly failures: Readonly<Record<FailureKind, number>>;
  /** Probes sent while failing. */
  readonly probes: number;
  /** Switches from the store to the policy. */
  readonly trips: number;
}

/** The probe's limit: generous, so a probe (cost 0) never disturbs a key. */
const PROBE_LIMIT = new GcraLimit({ emissionIntervalUs: 1, burstToleranceUs: 2 ** 46 });

/**
 * Wraps a store with a failure policy — a circuit breaker. While the store answers, its decisions
 * pass through. After `failureThreshold` consecutive failures (errors or missed deadlines) the
 * policy answers every call without touching the store, and a probe — a cost-0 check of the key
 * that failed last, which changes no state — is sent with exponential backoff; the first probe
 * that succeeds switches back to the store. Failures and switches are counted and emitted.
 *
 * Invalid input (empty key, bad cost) is rejected with a `RangeError` and never counts as a failure.
 */
export class PolicyStore extends EventEmitter<PolicyStoreEvents> implements GcraStore {
  readonly #store: GcraStore;
  readonly #policy: FailurePolicy;
  readonly #threshold: number;
  readonly #probeDelayMs: number;
  readonly #maxProbeDelayMs: number;
  readonly #closedRetryAfterUs: number;
  readonly #fallback: MemoryStore | undefined;
  #mode: PolicyMode = "store";
  #consecutive = 0;
  #probeKey = "probe";
  #probeTimer: NodeJS.Timeout | undefined;
  #probeAttempt = 0;
  #closed = false;
  #probes = 0;
  #trips = 0;
  readonly #decisions: Record<Exclude<DecisionSource, "deny-cache">, number> = {
    store: 0,
    fallback: 0,
    open: 0,
    closed: 0,
  };
  readonly #failures = Object.fromEntries(FAILURE_KINDS.map((kind) => [kind, 0])) as Record<
    FailureKind,
    number
  >;

  /** @throws RangeError for an unknown policy or invalid thresholds and delays. */
  constructor(store: GcraStore, options: PolicyStoreOptions) {
    super();
    if (!["open", "closed", "fallback"].includes(options.policy)) {
      throw new RangeError(`policy must be open, closed or fallback, got ${JSON.stringify(options.policy)}`);
    }
    const threshold = options.failureThreshold ?? 1;
    if (!Number.isSafeInteger(threshold) || threshold < 1) {
      throw new RangeError(`failureThreshold must be an integer ≥ 1, got ${threshold}`);
    }
    const probeDelayMs = options.probeDelayMs ?? 50;
    const maxProbeDelayMs = options.maxProbeDelayMs ?? 2000;
    if (!Number.isFinite(probeDelayMs) || probeDelayMs <= 0 || !Number.isFinite(maxProbeDelayMs)) {
      throw new RangeError(`probe delays must be finite and > 0, got ${probeDelayMs} and ${maxProbeDelayMs}`);
    }
    const closedRetryAfterUs = options.closedRetryAfterUs ?? 1_000_000;
    if (!Number.isSafeInteger(closedRetryAfterUs) || closedRetryAfterUs < 0) {
      throw new RangeError(`closedRetryAfterUs must be an integer ≥ 0, got ${closedRetryAfterUs}`);
    }
    this.#store = store;
    this.#policy = options.policy;
    this.#threshold = threshold;
    this.#probeDelayMs = probeDelayMs;
    this.#maxProbeDelayMs = Math.max(maxProbeDelayMs, probeDelayMs);
    this.#closedRetryAfterUs = closedRetryAfterUs;
    this.#fallback =
      options.policy === "fallback"
        ? (options.fallback ?? new MemoryStore({ maxKeys: 100_000, clock: options.clock ?? monotonicMicros }))
        : undefined;
  }

  /** The failure policy. */
  get policy(): FailurePolicy {
    return this.#policy;
  }

  /** Who answers now: `store`, or the policy while the store is failing. */
  get mode(): PolicyMode {
    return this.#mode;
  }

  /** Whether the store answers (for a readiness probe, combine with the policy: `open` and `fallback` always answer). */
  get healthy(): boolean {
    return this.#mode === "store";
  }

  /** Counters since construction. */
  stats(): PolicyStoreStats {
    return {
      mode: this.#mode,
      healthy: this.healthy,
      decisions: { ...this.#decisions },
      failures: { ...this.#failures },
      probes: this.#probes,
      trips: this.#trips,
    };
  }

  /** {@inheritDoc GcraStore.check} Never rejects for store failures: the policy answers. */
  async check(key: string, limit: GcraLimit, cost = 1): Promise<GcraDecision> {
    requireKey(key);
    requireCost(cost, limit);
    if (this.#mode !== "store") return this.#answer(key, limit, cost);
    try {
      const result = await this.#store.check(key, limit, cost);
      this.#consecutive = 0;
      this.#decisions.store++;
      return result;
    } catch (error) {
      if (error instanceof RangeError) throw error;
      this.#failed(toStoreError(error), key);
      return this.#answer(key, limit, cost);
    }
  }

  /** Stops probing and closes the wrapped store (and the fallback store). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#probeTimer);
    await this.#store.close();
    await this.#fallback?.close();
  }

  #answer(key: string, limit: GcraLimit, cost: number): GcraDecision {
    this.#decisions[this.#policy]++;
    switch (this.#policy) {
      case "fallback": {
        const local = (this.#fallback as MemoryStore).decide(key, limit, cost);
        return { ...local, source: "fallback" };
      }
      case "open":
        return decision(limit, true, 0, 0, "open");
      case "closed":
        return decision(limit, false, limit.burstToleranceUs, this.#closedRetryAfterUs, "closed");
    }
  }

  #failed(error: GcraStoreError, key: string): void {
    this.#failures[error.kind]++;
    this.#probeKey = key;
    this.emit("failure", error);
    if (this.#mode !== "store" || ++this.#consecutive < this.#threshold) return;
    this.#trips++;
    this.#switch(this.#policy);
    this.#probeAttempt = 0;
    this.#scheduleProbe();
  }

  #switch(mode: PolicyMode): void {
    const previous = this.#mode;
    if (previous === mode) return;
    this.#mode = mode;
    this.emit("mode", mode, previous);
  }

  #scheduleProbe(): void {
    if (this.#closed) return;
    const base = Math.min(this.#probeDelayMs * 2 ** this.#probeAttempt, this.#maxProbeDelayMs);
    const delay = base * (0.8 + Math.random() * 0.4);
    this.#probeAttempt++;
    this.#probeTimer = setTimeout(() => void this.#probe(), delay);
    this.#probeTimer.unref();
  }

  async #probe(): Promise<void> {
    if (this.#closed) return;
    this.#probes++;
    try {
      await this.#store.check(this.#probeKey, PROBE_LIMIT, 0);
    } catch (error) {
      const failure = toStoreError(error);
      this.#failures[failure.kind]++;
      this.emit("probe", false, failure);
      this.#scheduleProbe();
      return;
    }
    this.emit("probe", true, undefined);
    this.#consecutive = 0;
    this.#switch("store");
  }
}
