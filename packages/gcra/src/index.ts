/**
 * GCRA rate limiting: the pure algorithm, an in-memory store, an atomic Valkey store
 * (standalone, sentinel, cluster), failure policies and a local deny cache.
 *
 * @packageDocumentation
 */
export {
  parseNode,
  type ValkeyConnectionOptions,
  type ValkeyMode,
  type ValkeyNode,
} from "./connection.ts";
export { type DenyCacheOptions, DenyCacheStore } from "./deny-cache.ts";
export { FAILURE_KINDS, type FailureKind, GcraStoreError, toStoreError } from "./errors.ts";
export {
  createValkeyLimiter,
  type ValkeyLimiter,
  type ValkeyLimiterConfig,
  type ValkeyLimiterStats,
} from "./factory.ts";
export {
  type DecisionSource,
  decision,
  type GcraDecision,
  type GcraOutcome,
  gcra,
  monotonicMicros,
  toMilliseconds,
  toSeconds,
} from "./gcra.ts";
export { GcraLimit, type IntervalLimitOptions, MAX_DURATION_US, type RateLimitOptions } from "./limit.ts";
export { MemoryStore, type MemoryStoreOptions } from "./memory-store.ts";
export {
  type FailingPartition,
  type FailurePolicy,
  type PolicyMode,
  PolicyStore,
  type PolicyStoreEvents,
  type PolicyStoreOptions,
  type PolicyStoreStats,
} from "./policy-store.ts";
export { GCRA_SCRIPT } from "./script.ts";
export { ALL_KEYS, type GcraStore } from "./store.ts";
export {
  GCRA_SCRIPT_SHA,
  ValkeyStore,
  type ValkeyStoreEvents,
  type ValkeyStoreOptions,
  type ValkeyStoreStats,
} from "./valkey-store.ts";
