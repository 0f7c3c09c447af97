import type { GcraDecision } from "./gcra.ts";
import type { GcraLimit } from "./limit.ts";

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
   * @throws RangeError (synchronously or as a rejection) for an empty key or a cost that is not an
   *   integer in `[0, limit.burst]`.
   */
  check(key: string, limit: GcraLimit, cost?: number): Promise<GcraDecision>;
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
