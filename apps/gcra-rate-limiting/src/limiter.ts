import {
  createValkeyLimiter,
  type GcraDecision,
  GcraLimit,
  MemoryStore,
  type ValkeyLimiter,
  type ValkeyLimiterConfig,
} from "@spoekit/gcra";
import type { Config } from "./config.ts";

/** Where the agent's decisions come from: one interface over the embedded and the Valkey store. */
export interface AppLimiter {
  readonly kind: "embedded" | "valkey";
  /** The Valkey limiter (deny cache → failure policy → Valkey), when configured. */
  readonly valkey: ValkeyLimiter | undefined;
  /** The limit every client gets (SPOA_RATE_INTERVAL, SPOA_RATE_BURST). */
  readonly limit: GcraLimit;
  /** Decides one request of `key`: synchronously in memory, as a promise with Valkey. */
  decide(key: string): GcraDecision | Promise<GcraDecision>;
  /**
   * Whether the store serves useful answers, for `/readyz`: false only under policy `closed`
   * while Valkey is unusable (not connected, or every partition failing) — when every request
   * would be denied.
   */
  ready(): boolean;
  /**
   * Opens the store's connections before traffic comes: see {@link warmUp}. Resolves with
   * whether every partition answered within `budgetMs`; the embedded store is always warm.
   */
  warmUp(budgetMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** The limit of the configuration. */
export function limitOf(config: Config): GcraLimit {
  return new GcraLimit({ emissionIntervalUs: config.rateIntervalUs, burstToleranceUs: config.rateBurstUs });
}

/** The options of `createValkeyLimiter` that the configuration gives. */
export function valkeyOptions(config: Config): ValkeyLimiterConfig {
  return {
    nodes: config.valkeyNodes.map((url) => url.href),
    mode: config.valkeyMode,
    keyPrefix: config.valkeyKeyPrefix,
    timeoutMs: config.valkeyTimeoutMs,
    retentionMs: (config.rateTtlSeconds ?? 0) * 1000,
    failurePolicy: config.failurePolicy,
    sentinelName: config.valkeySentinelName,
    ...(config.valkeyUsername !== undefined ? { username: config.valkeyUsername } : {}),
    ...(config.valkeyPassword !== undefined ? { password: config.valkeyPassword } : {}),
    ...(config.valkeyCaFile !== undefined ? { tlsCaFile: config.valkeyCaFile } : {}),
  };
}

/** The embedded in-memory store when VALKEY_NODES is unset, else the Valkey limiter. */
export function createLimiter(config: Config): AppLimiter {
  const limit = limitOf(config);
  if (config.valkeyNodes.length === 0) {
    const memory = new MemoryStore();
    return {
      kind: "embedded",
      valkey: undefined,
      limit,
      decide: (key) => memory.decide(key, limit),
      ready: () => true,
      warmUp: async () => true,
      close: () => memory.close(),
    };
  }
  const valkey = createValkeyLimiter(valkeyOptions(config));
  return {
    kind: "valkey",
    valkey,
    limit,
    decide: (key) => valkey.check(key, limit),
    ready() {
      const stats = valkey.stats();
      return stats.ready && (config.failurePolicy !== "closed" || stats.connected);
    },
    warmUp: (budgetMs) => warmUp(valkey, limit, budgetMs),
    close: () => valkey.close(),
  };
}

/** Keys of the warm-up calls; no client key (an address or `net/len`) looks like them. */
const warmUpKey = (i: number) => `warm-up:${i}`;

/**
 * One key per partition of the store (every cluster shard; the one partition otherwise), found
 * by trying warm-up keys until each partition has one.
 */
function keysPerPartition(valkey: ValkeyLimiter): string[] {
  const store = valkey.valkey;
  const wanted = new Set(store.partitions());
  const keys: string[] = [];
  for (let i = 0; wanted.size > 0 && i < 100_000; i++) {
    const partition = store.partitionOf(warmUpKey(i));
    if (wanted.delete(partition)) keys.push(warmUpKey(i));
  }
  return keys;
}

/**
 * Warms the Valkey store up before the agent takes traffic: a cold store opens its connections
 * (in cluster mode one per shard, on first use) and loads its script on the first calls, which
 * can then miss their deadline and hand the first requests to the failure policy. Sends cost-0
 * checks — which change no state — straight to the Valkey store (so misses do not trip the
 * failure policy's circuit), one key per partition, until a round succeeds on every partition
 * known at its start, or `budgetMs` passes.
 */
async function warmUp(valkey: ValkeyLimiter, limit: GcraLimit, budgetMs: number): Promise<boolean> {
  const deadline = performance.now() + budgetMs;
  while (performance.now() < deadline) {
    const partitions = valkey.valkey.partitions().length;
    const results = await Promise.allSettled(
      keysPerPartition(valkey).map((key) => valkey.valkey.check(key, limit, 0)),
    );
    // Known partitions may grow once the first call has loaded a cluster's slot map.
    if (results.every((r) => r.status === "fulfilled") && valkey.valkey.partitions().length === partitions) {
      return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}
