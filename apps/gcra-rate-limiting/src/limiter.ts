import {
  createValkeyLimiter,
  type GcraDecision,
  GcraLimit,
  type GcraMultiDecision,
  type GcraRequest,
  MemoryStore,
  type StoreEvent,
  type ValkeyLimiter,
  type ValkeyLimiterConfig,
} from "@spoekit/gcra";
import type { Logger } from "pino";
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
  /** Decides one request against several limits, all or nothing (see `GcraStore.checkAll`). */
  decideAll(requests: readonly GcraRequest[]): GcraMultiDecision | Promise<GcraMultiDecision>;
  /**
   * Whether the store serves useful answers, for `/readyz`: false only under policy `closed`
   * while Valkey is unusable (not connected, or every partition failing) — when every request
   * would be denied.
   */
  ready(): boolean;
  /**
   * Opens the store's connections and loads its script before traffic comes (the limiter's
   * `warmUp`). Resolves with whether every partition answered within `budgetMs`; the embedded
   * store is always warm.
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
    ...config.circuit,
    sentinelName: config.valkeySentinelName,
    ...(config.valkeyUsername !== undefined ? { username: config.valkeyUsername } : {}),
    ...(config.valkeyPassword !== undefined ? { password: config.valkeyPassword } : {}),
    ...(config.valkeyCaFile !== undefined ? { tlsCaFile: config.valkeyCaFile } : {}),
  };
}

/** Logs one structured line per store transition (see `StoreEvent`); errors come rate-limited. */
export function logStoreEvent(log: Logger, event: StoreEvent): void {
  switch (event.type) {
    case "unreachable":
    case "auth-failure":
    case "tls-failure":
      log.warn(
        { event: event.type, node: event.node, code: event.error.code, reason: event.error.message },
        event.type === "unreachable"
          ? "Valkey is unreachable"
          : event.type === "auth-failure"
            ? "Valkey refused the credentials"
            : "the TLS handshake with Valkey failed",
      );
      return;
    case "recovered":
      log.info(
        { event: event.type, node: event.node, downMs: Math.round(event.downForUs / 1000) },
        "Valkey answers again",
      );
      return;
    case "circuit-open":
      log.warn(
        {
          event: event.type,
          shard: event.partition,
          reason: event.reason,
          failures: event.failures,
          calls: event.calls,
          code: event.error.code,
        },
        "the failure policy answers for this Valkey shard",
      );
      return;
    case "circuit-closed":
      log.info(
        {
          event: event.type,
          shard: event.partition,
          openMs: Math.round(event.openForUs / 1000),
          probes: event.probes,
        },
        "Valkey decides for this shard again",
      );
      return;
    case "script-reload":
      log.info({ event: event.type, node: event.node }, "Valkey lost the script (NOSCRIPT): sent again");
      return;
    case "error":
      log.warn(
        {
          event: event.type,
          kind: event.error.kind,
          code: event.error.code,
          reason: event.error.message,
          repeated: event.repeated,
        },
        "a Valkey call failed",
      );
      return;
  }
}

/** The embedded limiter: `memory` decides, every client getting `limit`. */
export function embeddedLimiter(limit: GcraLimit, memory: MemoryStore = new MemoryStore()): AppLimiter {
  return {
    kind: "embedded",
    valkey: undefined,
    limit,
    decide: (key) => memory.decide(key, limit),
    decideAll: (requests) => memory.decideAll(requests),
    ready: () => true,
    warmUp: async () => true,
    close: () => memory.close(),
  };
}

/** The embedded in-memory store when VALKEY_NODES is unset, else the Valkey limiter. */
export function createLimiter(config: Config, log?: Logger): AppLimiter {
  const limit = limitOf(config);
  if (config.valkeyNodes.length === 0) return embeddedLimiter(limit);
  const valkey = createValkeyLimiter({
    ...valkeyOptions(config),
    ...(log !== undefined ? { onEvent: (event: StoreEvent) => logStoreEvent(log, event) } : {}),
  });
  return {
    kind: "valkey",
    valkey,
    limit,
    decide: (key) => valkey.check(key, limit),
    decideAll: (requests) => valkey.checkAll(requests),
    ready() {
      const stats = valkey.stats();
      return stats.ready && (config.failurePolicy !== "closed" || stats.connected);
    },
    warmUp: (budgetMs) => valkey.warmUp(budgetMs),
    close: () => valkey.close(),
  };
}
