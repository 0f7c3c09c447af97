/**
 * GCRA rate limiting: the pure algorithm, an in-memory store, an atomic Valkey store
 * (standalone, sentinel, cluster), failure policies and a local deny cache.
 *
 * @packageDocumentation
 */
export type { CircuitOptions } from "./circuit.ts";
export { parseNode, type ValkeyConnectionOptions } from "./connection.ts";
export { type DenyCacheOptions, DenyCacheStore } from "./deny-cache.ts";
export {
  FAILURE_KINDS,
  type FailureKind,
  failureKind,
  GCRA_ERROR_CODES,
  GcraError,
  type GcraErrorOptions,
  GcraInputError,
  GcraOptionError,
  GcraStoreError,
  replyCode,
  toStoreError,
} from "./errors.ts";
export {
  STORE_EVENT_TYPES,
  type StoreEvent,
  type StoreEventListener,
} from "./events.ts";
export {
  createValkeyLimiter,
  type DenyCacheView,
  type PolicyStoreView,
  type ValkeyLimiter,
  type ValkeyLimiterConfig,
  type ValkeyLimiterStats,
  type ValkeyStoreView,
} from "./factory.ts";
export {
  DECISION_OUTCOMES,
  DECISION_SOURCES,
  type DecisionOutcome,
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
  decideAll,
  type GcraMultiDecision,
  type GcraRequest,
  type LocalMultiOutcome,
} from "./multi.ts";
export { GCRA_MULTI_SCRIPT, GCRA_MULTI_SCRIPT_SHA } from "./multi-script.ts";
export { PolicyStore, type PolicyStoreOptions } from "./policy-store.ts";
export {
  FAILURE_POLICIES,
  type FailingPartition,
  type FailurePolicy,
  POLICY_MODES,
  type PolicyMode,
  type PolicyStoreEvents,
  type PolicyStoreStats,
} from "./policy-types.ts";
export { GCRA_SCRIPT, GCRA_SCRIPT_SHA } from "./script.ts";
export { ALL_KEYS, type GcraStore } from "./store.ts";
export type { ValkeyStoreOptions } from "./store-options.ts";
export { ValkeyStore, type ValkeyStoreEvents, type ValkeyStoreStats } from "./valkey-store.ts";
export type { ValkeyMode, ValkeyNode } from "./valkey-types.ts";
