import type { CircuitOptions } from "./circuit.ts";
import { DenyCacheStore } from "./deny-cache.ts";
import type { FailureKind } from "./errors.ts";
import type { GcraDecision } from "./gcra.ts";
import type { GcraLimit } from "./limit.ts";
import { MemoryStore } from "./memory-store.ts";
import type { GcraMultiDecision, GcraRequest } from "./multi.ts";
import { PolicyStore } from "./policy-store.ts";
import type { FailurePolicy, PolicyMode, PolicyStoreStats } from "./policy-types.ts";
import type { GcraStore } from "./store.ts";
import type { ValkeyStoreOptions } from "./store-options.ts";
import { ValkeyStore, type ValkeyStoreStats } from "./valkey-store.ts";

/** What the limiter shows of its Valkey store: events and counters, not its calls. */
export type ValkeyStoreView = Pick<ValkeyStore, "on" | "once" | "off" | "stats" | "mode" | "connected">;
/** What the limiter shows of its failure policy: events, counters and state. */
export type PolicyStoreView = Pick<
  PolicyStore,
  "on" | "once" | "off" | "stats" | "mode" | "healthy" | "ready" | "policy"
>;
/** What the limiter shows of its deny cache. */
export type DenyCacheView = Pick<DenyCacheStore, "size" | "hits" | "clear">;

/**
 * Everything an application configures about its Valkey-backed limiter, e.g. from the
 * environment: where Valkey is and how to log in (see {@link ValkeyStoreOptions}), plus the
 * failure policy and the deny cache.
 */
export interface ValkeyLimiterConfig extends ValkeyStoreOptions, CircuitOptions {
  /** What to answer while Valkey fails. Default `open`. */
  readonly failurePolicy?: FailurePolicy;
  /** First probe delay while failing, ms; doubles with jitter. Default 50. */
  readonly probeDelayMs?: number;
  /** Longest probe delay while failing, ms. Default 2000. */
  readonly maxProbeDelayMs?: number;
  /** Keys the `fallback` policy's memory store holds. Default 100 000. */
  readonly fallbackMaxKeys?: number;
  /** Keys the deny cache remembers, or `false` for none. Default 10 000. */
  readonly denyCacheMaxKeys?: number | false;
}

/** What a `/readyz` endpoint and a Prometheus exporter need from the limiter. */
export interface ValkeyLimiterStats {
  /** `store` while Valkey answers for every key; the failure policy's name while any partition fails. */
  readonly mode: PolicyMode;
  /** Whether Valkey answers for every key (no partition failing). */
  readonly healthy: boolean;
  /**
   * For a readiness probe: false only when the policy is `closed` and every partition (every
   * cluster shard; the one partition otherwise) is failing — when every request would be denied.
   */
  readonly ready: boolean;
  /** The partitions (cluster shards: `host:port` of their primary) the policy answers for now. */
  readonly failing: PolicyStoreStats["failing"];
  /** How many partitions Valkey has now: the cluster's primaries, or 1. */
  readonly partitions: number;
  /** The Valkey deployment's mode, once known. */
  readonly valkeyMode: ValkeyStoreStats["mode"];
  /** Whether the Valkey client is connected now. */
  readonly connected: boolean;
  /** Decisions by who answered. */
  readonly decisions: Readonly<PolicyStoreStats["decisions"] & { "deny-cache": number }>;
  /** Valkey call failures by kind (probes included). */
  readonly failures: Readonly<Record<FailureKind, number>>;
  /** Switches from Valkey to the failure policy. */
  readonly trips: number;
}

/**
 * A ready-to-use limiter: deny cache → failure policy → Valkey store. `check()` never rejects
 * for Valkey failures (the policy answers); it rejects only for invalid input.
 */
export interface ValkeyLimiter extends GcraStore {
  /** The Valkey store, to observe (events: `latency`, `failure`, `mode`; `stats()`). */
  readonly valkey: ValkeyStoreView;
  /** The failure policy wrapper, to observe (events: `failure`, `mode`, `partition`, `probe`). */
  readonly policy: PolicyStoreView;
  /** The deny cache, unless disabled. */
  readonly denyCache: DenyCacheView | undefined;
  check(key: string, limit: GcraLimit, cost?: number): Promise<GcraDecision>;
  checkAll(requests: readonly GcraRequest[]): Promise<GcraMultiDecision>;
  /**
   * Warms the Valkey store up through the whole composition (see {@link GcraStore.warmUp}):
   * connects, opens every cluster node's connection and loads the script, so that the first
   * decisions do not miss their deadline. Call it before taking traffic (and before a readiness
   * probe says ready). Resolves with whether Valkey answered on every partition within `budgetMs`.
   */
  warmUp(budgetMs: number): Promise<boolean>;
  /** Counters and state for readiness and metrics. */
  stats(): ValkeyLimiterStats;
}

/**
 * Builds the limiter an application runs on from plain configuration. With `mode: "auto"` (the
 * default) the deployment's kind is detected in the background; a Valkey that is down at start
 * does not prevent construction — the failure policy answers until it is reachable.
 *
 * @example
 * ```ts
 * const limiter = createValkeyLimiter({
 *   nodes: ["redis://valkey-0:6379", "redis://valkey-1:6379"],
 *   password: process.env.VALKEY_PASSWORD,
 *   failurePolicy: "fallback",
 * });
 * const limit = new GcraLimit({ rate: 100, burst: 20 });
 * const { allowed, retryAfter } = await limiter.check(clientIp, limit);
 * ```
 * @throws GcraOptionError for invalid configuration (no nodes, bad URLs, mode, timeouts, thresholds, sizes).
 */
export function createValkeyLimiter(config: ValkeyLimiterConfig): ValkeyLimiter {
  const {
    failurePolicy = "open",
    failureThreshold,
    failureRatio,
    ratioWindowMs,
    ratioMinCalls,
    probeDelayMs,
    maxProbeDelayMs,
    fallbackMaxKeys = 100_000,
    denyCacheMaxKeys = 10_000,
    ...storeOptions
  } = config;
  const valkey = new ValkeyStore(storeOptions);
  const policy = new PolicyStore(valkey, {
    policy: failurePolicy,
    ...(failureThreshold !== undefined ? { failureThreshold } : {}),
    ...(failureRatio !== undefined ? { failureRatio } : {}),
    ...(ratioWindowMs !== undefined ? { ratioWindowMs } : {}),
    ...(ratioMinCalls !== undefined ? { ratioMinCalls } : {}),
    ...(config.onEvent !== undefined ? { onEvent: config.onEvent } : {}),
    ...(probeDelayMs !== undefined ? { probeDelayMs } : {}),
    ...(maxProbeDelayMs !== undefined ? { maxProbeDelayMs } : {}),
    ...(failurePolicy === "fallback"
      ? {
          fallback: new MemoryStore({
            maxKeys: fallbackMaxKeys,
            ...(config.clock ? { clock: config.clock } : {}),
          }),
        }
      : {}),
    ...(config.clock ? { clock: config.clock } : {}),
  });
  const denyCache =
    denyCacheMaxKeys === false
      ? undefined
      : new DenyCacheStore(policy, {
          maxKeys: denyCacheMaxKeys,
          ...(config.clock ? { clock: config.clock } : {}),
        });
  const top: GcraStore = denyCache ?? policy;
  return {
    valkey,
    policy,
    denyCache,
    check: (key, limit, cost) => top.check(key, limit, cost),
    checkAll: (requests) => top.checkAll(requests),
    warmUp: (budgetMs) => top.warmUp?.(budgetMs) ?? Promise.resolve(true),
    close: () => top.close(),
    stats() {
      const outer = policy.stats();
      const inner = valkey.stats();
      return {
        mode: outer.mode,
        healthy: outer.healthy,
        ready: outer.ready,
        failing: outer.failing,
        partitions: outer.partitions,
        valkeyMode: inner.mode,
        connected: inner.connected,
        decisions: { ...outer.decisions, "deny-cache": denyCache?.hits ?? 0 },
        failures: outer.failures,
        trips: outer.trips,
      };
    },
  };
}
