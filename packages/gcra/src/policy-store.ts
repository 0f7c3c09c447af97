import { EventEmitter } from "node:events";
import { Circuit, type CircuitOptions, type CircuitSettings, circuitSettings } from "./circuit.ts";
import {
  FAILURE_KINDS,
  type FailureKind,
  GcraInputError,
  GcraOptionError,
  type GcraStoreError,
  toStoreError,
} from "./errors.ts";
import { notify, type StoreEventListener } from "./events.ts";
import { type DecisionSource, decision, type GcraDecision, monotonicMicros } from "./gcra.ts";
import { type GcraLimit, PROBE_LIMIT, requireCost, requireKey } from "./limit.ts";
import { MemoryStore } from "./memory-store.ts";
import { type GcraMultiDecision, type GcraRequest, invalidRequests, policyAnswer } from "./multi.ts";
import {
  FAILURE_POLICIES,
  type FailingPartition,
  type FailurePolicy,
  type PolicyMode,
  type PolicyStoreEvents,
  type PolicyStoreStats,
} from "./policy-types.ts";
import { ALL_KEYS, type GcraStore } from "./store.ts";

/** Options of {@link PolicyStore}. */
export interface PolicyStoreOptions extends CircuitOptions {
  /** What to answer while the store fails. */
  readonly policy: FailurePolicy;
  /** First probe delay after the circuit opens, ms; doubles (with ±20 % jitter) up to `maxProbeDelayMs`. Default 50. */
  readonly probeDelayMs?: number;
  /** Longest probe delay, ms. Default 2000. */
  readonly maxProbeDelayMs?: number;
  /** `closed` policy: the `retryAfter` (µs) of its denials. Default 1 000 000 (1 s). */
  readonly closedRetryAfterUs?: number;
  /** `fallback` policy: the per-process memory store to decide with. Default: one holding up to 100 000 keys. */
  readonly fallback?: MemoryStore;
  /** Monotonic clock in integer µs. Default `performance.now()` in µs. */
  readonly clock?: () => number;
  /** Receives `circuit-open` and `circuit-closed` events (see `StoreEvent`). */
  readonly onEvent?: StoreEventListener;
}

/**
 * Wraps a store with a failure policy — a circuit breaker per partition of the store (see
 * {@link GcraStore.partitionOf}: a Valkey cluster's shards; one partition otherwise). While a
 * partition answers, its decisions pass through; a call that fails (an error or a missed
 * deadline) gets the policy's answer. The circuit opens only on sustained failure —
 * `failureThreshold` consecutive failures, or a share `failureRatio` of the calls of the last
 * `ratioWindowMs` — never on one late answer. While it is open the policy answers every call for
 * the partition's keys without touching the store, and a probe (the half-open trial: a cost-0
 * check of the key that failed last, which changes no state) is sent with exponential backoff;
 * the first probe that succeeds closes it. Keys of other partitions keep the store's exact
 * decisions meanwhile. Failures and switches are counted, emitted and reported as events.
 *
 * Invalid input (empty key, bad cost) is rejected with a `GcraInputError` and never counts as a failure.
 */
export class PolicyStore extends EventEmitter<PolicyStoreEvents> implements GcraStore {
  readonly #store: GcraStore;
  readonly #policy: FailurePolicy;
  readonly #circuit: CircuitSettings;
  readonly #probeDelayMs: number;
  readonly #maxProbeDelayMs: number;
  readonly #closedRetryAfterUs: number;
  readonly #fallback: MemoryStore | undefined;
  readonly #clock: () => number;
  readonly #onEvent: StoreEventListener | undefined;
  /** The circuit of each partition seen. */
  readonly #circuits = new Map<string, Circuit>();
  #failing = 0;
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

  /** @throws GcraOptionError for an unknown policy or invalid thresholds and delays. */
  constructor(store: GcraStore, options: PolicyStoreOptions) {
    super();
    if (!FAILURE_POLICIES.includes(options.policy)) {
      throw new GcraOptionError(
        `policy must be open, closed or fallback, got ${JSON.stringify(options.policy)}`,
      );
    }
    const probeDelayMs = options.probeDelayMs ?? 50;
    const maxProbeDelayMs = options.maxProbeDelayMs ?? 2000;
    if (!Number.isFinite(probeDelayMs) || probeDelayMs <= 0 || !Number.isFinite(maxProbeDelayMs)) {
      throw new GcraOptionError(
        `probe delays must be finite and > 0, got ${probeDelayMs} and ${maxProbeDelayMs}`,
      );
    }
    const closedRetryAfterUs = options.closedRetryAfterUs ?? 1_000_000;
    if (!Number.isSafeInteger(closedRetryAfterUs) || closedRetryAfterUs < 0) {
      throw new GcraOptionError(`closedRetryAfterUs must be an integer ≥ 0, got ${closedRetryAfterUs}`);
    }
    this.#circuit = circuitSettings(options);
    this.#store = store;
    this.#policy = options.policy;
    this.#probeDelayMs = probeDelayMs;
    this.#maxProbeDelayMs = Math.max(maxProbeDelayMs, probeDelayMs);
    this.#closedRetryAfterUs = closedRetryAfterUs;
    this.#clock = options.clock ?? monotonicMicros;
    this.#onEvent = options.onEvent;
    this.#fallback =
      options.policy === "fallback"
        ? (options.fallback ?? new MemoryStore({ maxKeys: 100_000, clock: this.#clock }))
        : undefined;
  }

  /** The failure policy. */
  get policy(): FailurePolicy {
    return this.#policy;
  }

  /** `store` while no partition is failing; the policy's name while any is. */
  get mode(): PolicyMode {
    return this.#failing > 0 ? this.#policy : "store";
  }

  /** Whether the store answers for every key (no partition failing). */
  get healthy(): boolean {
    return this.#failing === 0;
  }

  /** See {@link PolicyStoreStats.ready}: false only under `closed` while every partition is failing. */
  get ready(): boolean {
    if (this.#failing === 0 || this.#policy !== "closed") return true;
    const known = this.#store.partitions?.() ?? [ALL_KEYS];
    return known.some((partition) => !this.#circuits.get(partition)?.open);
  }

  /** Counters since construction. */
  stats(): PolicyStoreStats {
    const now = this.#clock();
    const failing: FailingPartition[] = [];
    for (const [partition, circuit] of this.#circuits) {
      if (circuit.open)
        failing.push({ partition, failingForUs: now - circuit.since, probes: circuit.probes });
    }
    return {
      mode: this.mode,
      healthy: this.healthy,
      ready: this.ready,
      failing,
      partitions: this.#store.partitions?.().length ?? 1,
      decisions: { ...this.#decisions },
      failures: { ...this.#failures },
      probes: this.#probes,
      trips: this.#trips,
    };
  }

  /** {@inheritDoc GcraStore.check} Never rejects for store failures: the policy answers. */
  check(key: string, limit: GcraLimit, cost = 1): Promise<GcraDecision> {
    try {
      requireKey(key);
      requireCost(cost, limit);
    } catch (error) {
      return Promise.reject(error);
    }
    // The partition as it is when the call is made: a failure counts against it.
    const partition = this.#store.partitionOf?.(key) ?? ALL_KEYS;
    const circuit = this.#circuitOf(partition);
    if (circuit.open) return Promise.resolve(this.#answer(key, limit, cost));
    // Not an async function, like checkAll: the callbacks hold only what they use.
    let pending: Promise<GcraDecision>;
    try {
      pending = this.#store.check(key, limit, cost);
    } catch (error) {
      pending = Promise.reject(error);
    }
    return pending.then(
      (result) => {
        circuit.succeeded(this.#clock());
        this.#decisions.store++;
        return result;
      },
      (error: unknown) => {
        if (error instanceof GcraInputError) throw error;
        this.#failed(partition, circuit, toStoreError(error), key);
        return this.#answer(key, limit, cost);
      },
    );
  }

  /**
   * {@inheritDoc GcraStore.checkAll} Never rejects for store failures: the policy answers the
   * whole request (`fallback`: all or nothing on its memory store) when any partition the keys
   * live on is failing, or when the store's call fails — a failure then counts against every
   * partition the keys live on.
   */
  checkAll(requests: readonly GcraRequest[]): Promise<GcraMultiDecision> {
    const invalid = invalidRequests(requests);
    if (invalid) return Promise.reject(invalid);
    // The partition of the first key, and any other the keys live on (only in a cluster, keys
    // without a shared hash tag), each with its circuit and a key of it (to probe it with).
    const first = (requests[0] as GcraRequest).key;
    const partition = this.#store.partitionOf?.(first) ?? ALL_KEYS;
    const circuit = this.#circuitOf(partition);
    let others: Map<string, [Circuit, string]> | undefined;
    for (let i = 1; i < requests.length; i++) {
      const { key } = requests[i] as GcraRequest;
      const at = this.#store.partitionOf?.(key) ?? ALL_KEYS;
      if (at === partition || others?.has(at)) continue;
      others ??= new Map();
      others.set(at, [this.#circuitOf(at), key]);
    }
    let open = circuit.open;
    if (others !== undefined) for (const [c] of others.values()) open ||= c.open;
    if (open) return Promise.resolve(requests).then((r) => this.#answerAll(r));
    // Not an async function: its suspended frame, with every local above, would live as long
    // as the call; the two callbacks hold only what they use.
    let pending: Promise<GcraMultiDecision>;
    try {
      pending = this.#store.checkAll(requests);
    } catch (error) {
      pending = Promise.reject(error);
    }
    return pending.then(
      (result) => {
        const now = this.#clock();
        circuit.succeeded(now);
        if (others !== undefined) for (const [c] of others.values()) c.succeeded(now);
        this.#decisions.store++;
        return result;
      },
      (error: unknown) => {
        if (error instanceof GcraInputError) throw error;
        const failure = toStoreError(error);
        this.#failed(partition, circuit, failure, first);
        if (others !== undefined) for (const [at, [c, key]] of others) this.#failed(at, c, failure, key);
        return this.#answerAll(requests);
      },
    );
  }

  /**
   * {@inheritDoc GcraStore.warmUp}
   *
   * Passes the warm-up on to the wrapped store (true at once for a store without one); its calls
   * bypass the circuits, so a cold store's misses open none.
   */
  warmUp(budgetMs: number): Promise<boolean> {
    return this.#store.warmUp?.(budgetMs) ?? Promise.resolve(true);
  }

  /** Stops probing and closes the wrapped store (and the fallback store). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const circuit of this.#circuits.values()) clearTimeout(circuit.probeTimer);
    await this.#store.close();
    await this.#fallback?.close();
  }

  #circuitOf(partition: string): Circuit {
    let circuit = this.#circuits.get(partition);
    if (circuit === undefined) {
      circuit = new Circuit(this.#circuit);
      this.#circuits.set(partition, circuit);
    }
    return circuit;
  }

  #answerAll(requests: readonly GcraRequest[]): GcraMultiDecision {
    this.#decisions[this.#policy]++;
    if (this.#policy === "fallback") {
      const local = (this.#fallback as MemoryStore).decideAll(requests);
      const decisions = local.decisions.map((d) => ({ ...d, source: "fallback" as const }));
      return { allowed: local.allowed, decisions, source: "fallback" };
    }
    return policyAnswer(requests, this.#policy === "open", this.#closedRetryAfterUs);
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

  #failed(partition: string, circuit: Circuit, error: GcraStoreError, key: string): void {
    this.#failures[error.kind]++;
    circuit.probeKey = key;
    this.emit("failure", error, partition);
    if (circuit.open) return;
    const now = this.#clock();
    const trip = circuit.failed(now, error.kind === "timeout");
    if (trip === undefined) return;
    this.#trips++;
    circuit.trip(now);
    this.#failing++;
    this.emit("partition", partition, this.#policy, "store");
    if (this.#failing === 1) this.emit("mode", this.#policy, "store");
    notify(this.#onEvent, { type: "circuit-open", partition, ...trip, error });
    this.#scheduleProbe(partition, circuit);
  }

  #recovered(partition: string, circuit: Circuit): void {
    const openForUs = this.#clock() - circuit.since;
    const probes = circuit.probes;
    circuit.reset();
    this.#failing--;
    this.emit("partition", partition, "store", this.#policy);
    if (this.#failing === 0) this.emit("mode", "store", this.#policy);
    notify(this.#onEvent, { type: "circuit-closed", partition, openForUs, probes });
  }

  #scheduleProbe(partition: string, circuit: Circuit): void {
    if (this.#closed) return;
    const base = Math.min(this.#probeDelayMs * 2 ** circuit.probeAttempt, this.#maxProbeDelayMs);
    const delay = base * (0.8 + Math.random() * 0.4);
    circuit.probeAttempt++;
    circuit.probeTimer = setTimeout(() => void this.#probe(partition, circuit), delay);
    circuit.probeTimer.unref();
  }

  async #probe(partition: string, circuit: Circuit): Promise<void> {
    if (this.#closed) return;
    this.#probes++;
    circuit.probes++;
    try {
      await this.#store.check(circuit.probeKey, PROBE_LIMIT, 0);
    } catch (error) {
      const failure = toStoreError(error);
      this.#failures[failure.kind]++;
      this.emit("probe", false, failure, partition);
      this.#scheduleProbe(partition, circuit);
      return;
    }
    this.emit("probe", true, undefined, partition);
    if (circuit.open) this.#recovered(partition, circuit);
  }
}
