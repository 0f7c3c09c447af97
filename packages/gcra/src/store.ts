import type { GcraDecision } from "./gcra.ts";
import type { GcraLimit } from "./limit.ts";

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
}
