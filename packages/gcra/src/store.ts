import type { GcraDecision } from "./gcra.ts";
import type { GcraLimit } from "./limit.ts";
import type { GcraMultiDecision, GcraRequest } from "./multi.ts";

/**
 * The partition of a store without parts that fail independently: every key. Standalone and
 * sentinel-managed Valkey have only this one, and so does a cluster until its slot map is known.
 */
export const ALL_KEYS = "*";

/**
 * Where decisions are made: the in-memory store, the Valkey store, and the wrappers that add a
 * failure policy or a deny cache around another store all implement this.
 */
export interface GcraStore {
  /**
   * Decides one request of `cost` (default 1) against `limit` for `key`, atomically per key.
   *
   * @throws GcraInputError (synchronously or as a rejection) for an empty key or a cost that is not an
   *   integer in `[0, limit.burst]`.
   */
  check(key: string, limit: GcraLimit, cost?: number): Promise<GcraDecision>;
  /**
   * Decides one request against several limits, all or nothing: the request passes only if every
   * enforcing limit allows it, and a request that any enforcing limit denies consumes nothing
   * from any of them (GCRA's "a denial leaves the state unchanged", extended to the whole
   * request). See each store for how atomic that is (a Valkey cluster: per slot).
   *
   * @throws GcraInputError (as a rejection) for an empty list, an empty key or a bad cost.
   */
  checkAll(requests: readonly GcraRequest[]): Promise<GcraMultiDecision>;
  /**
   * Gets the store ready for traffic before it comes: connects, and loads what the first calls
   * would otherwise load (for Valkey: every node's connection and the script), so that cold-start
   * calls do not miss their deadline. Resolves with whether the store answered on every
   * partition within `budgetMs`; never rejects for store failures. Stores that need no warm-up
   * (in memory) do not have it; wrappers pass it on.
   *
   * @throws GcraOptionError for a budget that is not a finite number ≥ 0.
   */
  warmUp?(budgetMs: number): Promise<boolean>;
  /** Releases connections and timers; pending checks settle. */
  close(): Promise<void>;
  /**
   * For stores made of parts that fail independently (a Valkey cluster's shards): the part that
   * holds `key` now. Keys of one partition share their fate, so a `PolicyStore` keeps one
   * circuit per partition. Without it (or when it returns {@link ALL_KEYS}) the store is one
   * partition.
   */
  partitionOf?(key: string): string;
  /** With `partitionOf`: every partition known now (for readiness: are they all failing?). */
  partitions?(): readonly string[];
}
