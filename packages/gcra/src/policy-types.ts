/** The failure policies, who answers, and what `PolicyStore` reports: its events and counters. */
import type { FailureKind, GcraStoreError } from "./errors.ts";
import type { DecisionSource } from "./gcra.ts";

/**
 * What to answer while the store fails: `open` allows every request, `closed` denies every
 * request, `fallback` decides with a per-process {@link MemoryStore} (exact per process; with N
 * processes a client may get up to N times its limit while Valkey is down).
 */
export type FailurePolicy = "open" | "closed" | "fallback";

/** Every failure policy, e.g. to validate a setting. */
export const FAILURE_POLICIES: readonly FailurePolicy[] = Object.freeze(["open", "closed", "fallback"]);

/** Who answers right now: the store, or the failure policy. */
export type PolicyMode = "store" | FailurePolicy;

/** Every policy mode, e.g. for a metric's label values. */
export const POLICY_MODES: readonly PolicyMode[] = Object.freeze(["store", "open", "closed", "fallback"]);

/** Events of `PolicyStore`. */
export interface PolicyStoreEvents {
  /** A store call failed (the policy answered instead) for a key of `partition`. */
  failure: [error: GcraStoreError, partition: string];
  /**
   * The overall mode changed: the policy's name when a first partition starts failing, `store`
   * when the last one is healthy again.
   */
  mode: [mode: PolicyMode, previous: PolicyMode];
  /** Who answers for the keys of `partition` changed. */
  partition: [partition: string, mode: PolicyMode, previous: PolicyMode];
  /** A probe of a failing partition finished. */
  probe: [ok: boolean, error: GcraStoreError | undefined, partition: string];
}

/** A partition the policy answers for, in {@link PolicyStoreStats.failing}. */
export interface FailingPartition {
  /** The partition (for a Valkey cluster: the `host:port` of the primary serving its slots). */
  readonly partition: string;
  /** How long it has been failing, µs. */
  readonly failingForUs: number;
  /** Probes sent to it since it started failing. */
  readonly probes: number;
}

/** Counters of `PolicyStore`, cumulative since construction. */
export interface PolicyStoreStats {
  /** `store` while no partition is failing; the policy's name while any is. */
  readonly mode: PolicyMode;
  /** Whether the store answers for every key (no partition failing). */
  readonly healthy: boolean;
  /**
   * Whether the limiter serves useful answers — for a readiness probe. Always true for `open`
   * and `fallback` (they answer every request); for `closed`, false only while every known
   * partition is failing, i.e. while every request is denied.
   */
  readonly ready: boolean;
  /** The partitions the policy answers for now. */
  readonly failing: readonly FailingPartition[];
  /** How many partitions the store has now (1 for a store without partitions). */
  readonly partitions: number;
  /** Decisions by who answered (`deny-cache` is counted by {@link DenyCacheStore}). */
  readonly decisions: Readonly<Record<Exclude<DecisionSource, "deny-cache">, number>>;
  /** Store failures by kind (each failed call, and each failed probe). */
  readonly failures: Readonly<Record<FailureKind, number>>;
  /** Probes sent while failing. */
  readonly probes: number;
  /** Switches of a partition from the store to the policy. */
  readonly trips: number;
}
