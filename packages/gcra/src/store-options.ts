import type { Cluster, Redis } from "iovalkey";
import { loadCaFile, type ValkeyConnectionOptions, validateConnection } from "./connection.ts";
import { GcraOptionError } from "./errors.ts";
import { DEFAULT_REPEAT_INTERVAL_MS, type StoreEventListener } from "./events.ts";
import { monotonicMicros } from "./gcra.ts";

/** Options of `ValkeyStore`: where Valkey is (or a ready-made client) and how to use it. */
export interface ValkeyStoreOptions extends Partial<ValkeyConnectionOptions> {
  /**
   * An iovalkey `Redis` or `Cluster` to use instead of `nodes`. The store leaves its options
   * alone (its own queueing and retries then apply); `close()` does not quit a client passed in.
   * A `Cluster` must not have `enableAutoPipelining` (see the README).
   */
  readonly client?: Redis | Cluster;
  /** Prepended to every key. Default `"gcra:"`. */
  readonly keyPrefix?: string;
  /**
   * Wrap the caller's key in a hash tag, `prefix{key}`, so that the cluster slot is the caller's
   * key's own and other keys about the same client tagged the same way (`other:{key}`) land on
   * the same node, for multi-key rules. The prefix must then hold no `{`. Default false: the whole
   * stored key is hashed (and a prefix holding a hash tag would pin every key to one slot).
   */
  readonly hashTag?: boolean;
  /** Per-call deadline, ms: past it the call fails with kind `timeout`. Default 10. */
  readonly timeoutMs?: number;
  /**
   * Keep a key at least this long (ms) after its last allowed request, even once its TAT has
   * passed. Default 0: the key expires exactly at its TAT (rounded up to the millisecond).
   */
  readonly retentionMs?: number;
  /**
   * Auto-pipelining: decisions issued in the same tick of the event loop are written to the
   * connection (in cluster mode: to each node's connection) together, in batches of at most
   * `maxBatch` (default 16), so they share round trips and system calls while Valkey already
   * works on the first batch. `false` writes each command on its own.
   */
  readonly pipelining?: false | { readonly maxBatch?: number };
  /** Monotonic clock in integer µs, for deadlines and latency. Default `performance.now()` in µs. */
  readonly clock?: () => number;
  /** Receives the store's transitions (unreachable, recovered, auth and TLS failures, reloads, errors). */
  readonly onEvent?: StoreEventListener;
  /** Least time between two `error` events for identical failures, ms. Default 10 000. */
  readonly repeatIntervalMs?: number;
}

/** The validated settings of a store. */
export interface StoreSettings {
  readonly keyPrefix: string;
  readonly hashTag: boolean;
  readonly timeoutMs: number;
  readonly retentionArg: string;
  readonly maxBatch: number;
  readonly clock: () => number;
  readonly repeatIntervalMs: number;
  /** The connection options with the CA file read, unless a client was given. */
  readonly connection: ValkeyConnectionOptions | undefined;
}

/** Validates the options; a {@link GcraOptionError} names the first bad one. */
export function storeSettings(options: ValkeyStoreOptions): StoreSettings {
  const timeoutMs = options.timeoutMs ?? 10;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new GcraOptionError(`timeoutMs must be finite and > 0, got ${timeoutMs}`);
  }
  const retentionMs = options.retentionMs ?? 0;
  if (!Number.isSafeInteger(retentionMs) || retentionMs < 0) {
    throw new GcraOptionError(`retentionMs must be an integer ≥ 0, got ${retentionMs}`);
  }
  if (options.keyPrefix !== undefined && typeof options.keyPrefix !== "string") {
    throw new GcraOptionError("keyPrefix must be a string");
  }
  if (options.hashTag && options.keyPrefix?.includes("{")) {
    throw new GcraOptionError(
      "with hashTag the keyPrefix must hold no '{': its own hash tag would pick the slot",
    );
  }
  const maxBatch = options.pipelining === false ? 0 : (options.pipelining?.maxBatch ?? 16);
  if (!Number.isSafeInteger(maxBatch) || maxBatch < 0) {
    throw new GcraOptionError(`pipelining.maxBatch must be an integer ≥ 1, got ${maxBatch}`);
  }
  const repeatIntervalMs = options.repeatIntervalMs ?? DEFAULT_REPEAT_INTERVAL_MS;
  if (!Number.isFinite(repeatIntervalMs) || repeatIntervalMs < 0) {
    throw new GcraOptionError(`repeatIntervalMs must be finite and ≥ 0, got ${repeatIntervalMs}`);
  }
  if (options.onEvent !== undefined && typeof options.onEvent !== "function") {
    throw new GcraOptionError("onEvent must be a function");
  }
  let connection: ValkeyConnectionOptions | undefined;
  if (options.client) {
    if (options.nodes) throw new GcraOptionError("give either client or nodes, not both");
    if (options.client.isCluster && options.client.options.enableAutoPipelining) {
      throw new GcraOptionError(
        "a Cluster client with enableAutoPipelining would pipeline decisions for keys on different nodes together, which iovalkey rejects: turn it off (the store coalesces writes itself)",
      );
    }
  } else {
    connection = loadCaFile({ ...options, nodes: options.nodes ?? [] } satisfies ValkeyConnectionOptions);
    validateConnection(connection);
  }
  return {
    keyPrefix: options.keyPrefix ?? "gcra:",
    hashTag: options.hashTag ?? false,
    timeoutMs,
    retentionArg: String(retentionMs),
    maxBatch,
    clock: options.clock ?? monotonicMicros,
    repeatIntervalMs,
    connection,
  };
}
