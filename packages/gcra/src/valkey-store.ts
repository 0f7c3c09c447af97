import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Writable } from "node:stream";
import clusterKeySlot from "cluster-key-slot";
import type { Cluster, Redis } from "iovalkey";
import {
  createClient,
  detectMode,
  loadCaFile,
  type ValkeyConnectionOptions,
  type ValkeyMode,
  validateConnection,
} from "./connection.ts";
import { DeadlineQueue, type Expiring } from "./deadline.ts";
import { FAILURE_KINDS, type FailureKind, GcraStoreError, toStoreError } from "./errors.ts";
import { decision, type GcraDecision, monotonicMicros } from "./gcra.ts";
import { type GcraLimit, invalidInput } from "./limit.ts";
import { GCRA_SCRIPT } from "./script.ts";
import { ALL_KEYS, type GcraStore } from "./store.ts";

/** Options of {@link ValkeyStore}: where Valkey is (or a ready-made client) and how to use it. */
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
}

/** Events of {@link ValkeyStore}. */
export interface ValkeyStoreEvents {
  /** A call failed (it rejected with this error). */
  failure: [error: GcraStoreError];
  /** A call finished after `durationUs` µs, successfully or not: for a latency histogram. */
  latency: [durationUs: number, ok: boolean];
  /** The mode was settled (at construction, or when `auto` detection succeeded). */
  mode: [mode: ValkeyMode];
}

/** Counters of {@link ValkeyStore}, cumulative since construction. */
export interface ValkeyStoreStats {
  /** The deployment's mode, once known. */
  readonly mode: ValkeyMode | undefined;
  /** Whether the client is connected and ready now. */
  readonly connected: boolean;
  /** Calls made (validation failures excluded). */
  readonly calls: number;
  /** Calls answered, allowed. */
  readonly allowed: number;
  /** Calls answered, denied. */
  readonly denied: number;
  /** Failed calls by kind. */
  readonly failures: Readonly<Record<FailureKind, number>>;
}

type ScriptReply = [number, number, number];

/** SHA1 of {@link GCRA_SCRIPT}, as EVALSHA wants it. */
export const GCRA_SCRIPT_SHA = createHash("sha1").update(GCRA_SCRIPT).digest("hex");
/** Least time between two slot-map refreshes triggered by errors (cluster mode). */
const REFRESH_THROTTLE_US = 200_000;
/** Backoff of `auto` mode detection while no node answers. */
const DETECT_DELAYS_MS = [50, 100, 200, 500, 1000, 2000];

function readyOrNot(client: Redis | Cluster): boolean {
  return client.status === "ready";
}

/**
 * GCRA on Valkey/Redis (standalone, sentinel-managed or cluster) through iovalkey: one Lua script
 * per decision ({@link GCRA_SCRIPT}), atomic per key, on the server's clock; auto-pipelined, so
 * concurrent decisions share round trips; each call bounded by a deadline.
 *
 * The store can be created while Valkey is unreachable: calls then fail (kind `connection` or
 * `timeout`) until it is reachable — wrap it in a {@link PolicyStore} to decide what that means.
 * Scripts missing on a server (`NOSCRIPT` after `SCRIPT FLUSH`, a restart or a failover) are
 * loaded again transparently.
 */
export class ValkeyStore extends EventEmitter<ValkeyStoreEvents> implements GcraStore {
  readonly #keyPrefix: string;
  readonly #hashTag: boolean;
  readonly #timeoutMs: number;
  /** `retentionMs` as the script's argument. */
  readonly #retentionArg: string;
  readonly #clock: () => number;
  readonly #ownsClient: boolean;
  readonly #maxBatch: number;
  readonly #deadlines: DeadlineQueue;
  #client: Redis | Cluster | undefined;
  /** Connections whose writes are being coalesced in this tick, and commands in each batch. */
  readonly #corked: Writable[] = [];
  readonly #batched: number[] = [];
  /** Cluster mode: the connection to each node, by `host:port` as the slot map names them. */
  readonly #nodes = new Map<string, Redis>();
  #mode: ValkeyMode | undefined;
  #connecting: Promise<void> | undefined;
  #readyWait: Promise<void> | undefined;
  #detectTimer: NodeJS.Timeout | undefined;
  /** Why the last attempt to connect (or to detect the mode) failed; cleared once ready. */
  #connectionError: Error | undefined;
  #lastRefresh = Number.NEGATIVE_INFINITY;
  #closed = false;
  #calls = 0;
  #allowed = 0;
  #denied = 0;
  readonly #failures: Record<FailureKind, number> = Object.fromEntries(
    FAILURE_KINDS.map((k) => [k, 0]),
  ) as Record<FailureKind, number>;

  /** @throws RangeError for invalid options (no nodes, a bad URL or mode, a bad timeout or retention). */
  constructor(options: ValkeyStoreOptions) {
    super();
    const timeoutMs = options.timeoutMs ?? 10;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(`timeoutMs must be finite and > 0, got ${timeoutMs}`);
    }
    const retentionMs = options.retentionMs ?? 0;
    if (!Number.isSafeInteger(retentionMs) || retentionMs < 0) {
      throw new RangeError(`retentionMs must be an integer ≥ 0, got ${retentionMs}`);
    }
    if (options.keyPrefix !== undefined && typeof options.keyPrefix !== "string") {
      throw new RangeError("keyPrefix must be a string");
    }
    if (options.hashTag && options.keyPrefix?.includes("{")) {
      throw new RangeError(
        "with hashTag the keyPrefix must hold no '{': its own hash tag would pick the slot",
      );
    }
    this.#keyPrefix = options.keyPrefix ?? "gcra:";
    this.#hashTag = options.hashTag ?? false;
    this.#timeoutMs = timeoutMs;
    this.#retentionArg = String(retentionMs);
    this.#clock = options.clock ?? monotonicMicros;
    this.#deadlines = new DeadlineQueue(this.#clock);
    const maxBatch = options.pipelining === false ? 0 : (options.pipelining?.maxBatch ?? 16);
    if (!Number.isSafeInteger(maxBatch) || maxBatch < 0) {
      throw new RangeError(`pipelining.maxBatch must be an integer ≥ 1, got ${maxBatch}`);
    }
    this.#maxBatch = maxBatch;
    this.#ownsClient = options.client === undefined;
    if (options.client) {
      if (options.nodes) throw new RangeError("give either client or nodes, not both");
      if (options.client.isCluster && options.client.options.enableAutoPipelining) {
        throw new RangeError(
          "a Cluster client with enableAutoPipelining would pipeline decisions for keys on different nodes together, which iovalkey rejects: turn it off (the store coalesces writes itself)",
        );
      }
      this.#attach(options.client, options.client.isCluster ? "cluster" : "standalone");
      return;
    }
    const connection = loadCaFile({
      ...options,
      nodes: options.nodes ?? [],
    } satisfies ValkeyConnectionOptions);
    validateConnection(connection);
    const mode = connection.mode ?? "auto";
    if (mode === "auto") {
      this.#connecting = this.#detect(connection);
    } else {
      this.#attach(createClient(connection, mode), mode);
    }
  }

  /** The deployment's mode, once known (`auto` detection settles it in the background). */
  get mode(): ValkeyMode | undefined {
    return this.#mode;
  }

  /** The iovalkey client, once created. */
  get client(): Redis | Cluster | undefined {
    return this.#client;
  }

  /** Whether the client is connected and ready. */
  get connected(): boolean {
    return this.#client !== undefined && readyOrNot(this.#client);
  }

  /** The Valkey key a rate-limit key is stored under. */
  storageKey(key: string): string {
    return this.#hashTag ? `${this.#keyPrefix}{${key}}` : this.#keyPrefix + key;
  }

  /**
   * The partition holding `key`: in cluster mode the `host:port` of the primary that serves the
   * key's slot (per the client's slot map, which follows failovers); otherwise, and while the
   * slot map is unknown, {@link ALL_KEYS}. A {@link PolicyStore} keeps one circuit per partition,
   * so a failing shard hands only its own keys to the failure policy.
   */
  partitionOf(key: string): string {
    if (this.#mode !== "cluster") return ALL_KEYS;
    return this.#primaryFor(this.storageKey(key)) ?? ALL_KEYS;
  }

  /** Every partition known now: the primaries serving slots in cluster mode, else {@link ALL_KEYS}. */
  partitions(): readonly string[] {
    if (this.#mode !== "cluster") return [ALL_KEYS];
    const primaries = new Set<string>();
    for (const owners of (this.#client as Cluster).slots) {
      const primary = owners?.[0];
      if (primary !== undefined) primaries.add(primary);
    }
    return primaries.size > 0 ? [...primaries] : [ALL_KEYS];
  }

  /** Counters since construction. */
  stats(): ValkeyStoreStats {
    return {
      mode: this.#mode,
      connected: this.connected,
      calls: this.#calls,
      allowed: this.#allowed,
      denied: this.#denied,
      failures: { ...this.#failures },
    };
  }

  /**
   * {@inheritDoc GcraStore.check}
   *
   * Rejects with a {@link GcraStoreError} when Valkey does not answer within the deadline or
   * answers with an error; the error's `kind` says why.
   */
  check(key: string, limit: GcraLimit, cost = 1): Promise<GcraDecision> {
    const invalid = invalidInput(key, limit, cost);
    if (invalid) return Promise.reject(invalid);
    this.#calls++;
    const started = this.#clock();
    const client = this.#client;
    if (client !== undefined && readyOrNot(client)) {
      return this.#call(
        client,
        this.storageKey(key),
        limit,
        cost,
        started,
        started + this.#timeoutMs * 1000,
        true,
      );
    }
    return this.#checkWhenReady(this.storageKey(key), limit, cost, started);
  }

  /** Closes the connection (unless the client was passed in) and stops background work. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#detectTimer);
    this.#flush();
    const client = this.#client;
    if (!client || !this.#ownsClient) return;
    try {
      await client.quit();
    } catch {
      client.disconnect();
    }
  }

  /**
   * Runs the script by EVALSHA (EVAL when the server answers NOSCRIPT: flushed, restarted or
   * failed over) and settles with the decision, or with a {@link GcraStoreError} at `deadline`.
   * With `queued`, the deadline is kept by the shared queue (calls arrive in deadline order);
   * otherwise by a timer of its own.
   */
  #call(
    client: Redis | Cluster,
    storageKey: string,
    limit: GcraLimit,
    cost: number,
    started: number,
    deadline: number,
    queued: boolean,
  ): Promise<GcraDecision> {
    return new Promise<GcraDecision>((resolve, reject) => {
      const interval = String(limit.emissionIntervalUs);
      const tolerance = String(limit.burstToleranceUs);
      const units = String(cost);
      const retention = this.#retentionArg;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const call: Expiring = {
        deadline,
        expire: () => {
          settled = true;
          reject(
            this.#failed(
              new GcraStoreError("timeout", `no answer from Valkey within ${this.#timeoutMs} ms`),
              started,
            ),
          );
        },
      };
      let ticket = -1;
      if (queued) ticket = this.#deadlines.add(call);
      else timer = setTimeout(call.expire, (deadline - started) / 1000);
      /** Marks the call answered; false when it already was (or expired). */
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        if (queued) this.#deadlines.delete(ticket);
        else clearTimeout(timer);
        return true;
      };
      const answered = (reply: unknown) => {
        if (!settle()) return;
        if (!isScriptReply(reply)) {
          reject(
            this.#failed(
              new GcraStoreError("reply", `unexpected reply to the GCRA script: ${String(reply)}`),
              started,
            ),
          );
          return;
        }
        const allowed = reply[0] === 1;
        if (allowed) this.#allowed++;
        else this.#denied++;
        this.emit("latency", this.#clock() - started, true);
        resolve(decision(limit, allowed, reply[1], reply[2], "store"));
      };
      const failed = (error: unknown) => {
        if (settle()) reject(this.#failed(toStoreError(error), started));
      };
      this.#coalesce(this.#streamFor(client, storageKey));
      client
        .evalsha(GCRA_SCRIPT_SHA, 1, storageKey, interval, tolerance, units, retention)
        .then(answered, (error) => {
          if (settled) return;
          if (!String(error).includes("NOSCRIPT")) {
            failed(error);
            return;
          }
          // The server lost its script cache: EVAL sends the script once more, which caches it again.
          client
            .eval(GCRA_SCRIPT, 1, storageKey, interval, tolerance, units, retention)
            .then(answered, failed);
        });
    });
  }

  /** The primary serving `storageKey`'s slot, per the cluster client's slot map. */
  #primaryFor(storageKey: string): string | undefined {
    return (this.#client as Cluster).slots[clusterKeySlot(storageKey)]?.[0];
  }

  /** The connection a command for `storageKey` is written to, when it is ready for writes. */
  #streamFor(client: Redis | Cluster, storageKey: string): Writable | undefined {
    if (this.#maxBatch === 0) return undefined;
    let connection: Redis | undefined;
    if (this.#mode === "cluster") {
      const primary = this.#primaryFor(storageKey);
      connection = primary === undefined ? undefined : this.#nodes.get(primary);
    } else {
      connection = client as Redis;
    }
    return connection !== undefined && readyOrNot(connection) ? (connection.stream as Writable) : undefined;
  }

  /**
   * Auto-pipelining: cork a connection's stream at its first command of a tick and uncork it at
   * the end of the tick, or every `maxBatch` commands — one write per batch and connection.
   */
  #coalesce(stream: Writable | undefined): void {
    if (stream === undefined) return;
    const at = this.#corked.indexOf(stream);
    if (at >= 0) {
      const batched = (this.#batched[at] as number) + 1;
      if (batched >= this.#maxBatch) {
        stream.uncork();
        stream.cork();
        this.#batched[at] = 0;
      } else {
        this.#batched[at] = batched;
      }
      return;
    }
    if (this.#corked.length === 0) process.nextTick(this.#flush);
    stream.cork();
    this.#corked.push(stream);
    this.#batched.push(1);
  }

  readonly #flush = (): void => {
    const corked = this.#corked;
    for (let i = 0; i < corked.length; i++) (corked[i] as Writable).uncork();
    corked.length = 0;
    this.#batched.length = 0;
  };

  /** The slow path: wait (within the deadline) for the mode to be known and the client to be ready. */
  async #checkWhenReady(
    storageKey: string,
    limit: GcraLimit,
    cost: number,
    started: number,
  ): Promise<GcraDecision> {
    const deadline = started + this.#timeoutMs * 1000;
    if (this.#closed) throw this.#failed(new GcraStoreError("connection", "the store is closed"), started);
    const ready = await this.#waitUntil(this.#whenReady(), deadline);
    const client = this.#client;
    if (!ready || client === undefined) {
      const detail = `${this.#mode === undefined ? "no Valkey node answered yet" : "not connected to Valkey"} within ${this.#timeoutMs} ms`;
      const cause = this.#connectionError;
      // Say why when the last attempt to connect failed: refused, a TLS handshake, a password.
      const error = cause
        ? new GcraStoreError(toStoreError(cause).kind, `${detail}: ${cause.message}`, { cause })
        : new GcraStoreError("timeout", detail);
      throw this.#failed(error, started);
    }
    return this.#call(client, storageKey, limit, cost, started, deadline, false);
  }

  /** Resolves true when `promise` settles successfully before `deadline` (µs, own clock), false otherwise. */
  #waitUntil(promise: Promise<void>, deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.max((deadline - this.#clock()) / 1000, 0));
      promise.then(
        () => {
          clearTimeout(timer);
          resolve(true);
        },
        () => {
          clearTimeout(timer);
          resolve(false);
        },
      );
    });
  }

  /** A promise for the next moment the client is ready (shared by all waiting calls). */
  #whenReady(): Promise<void> {
    const client = this.#client;
    if (client === undefined) {
      return (this.#connecting ?? Promise.reject(new Error("no client"))).then(() => this.#whenReady());
    }
    if (readyOrNot(client)) return Promise.resolve();
    if (client.status === "end") return Promise.reject(new Error("connection ended"));
    this.#readyWait ??= new Promise<void>((resolve) => {
      client.once("ready", () => {
        this.#readyWait = undefined;
        resolve();
      });
    });
    return this.#readyWait;
  }

  #failed(error: GcraStoreError, started: number): GcraStoreError {
    this.#failures[error.kind]++;
    this.emit("latency", this.#clock() - started, false);
    this.emit("failure", error);
    if (this.#mode === "cluster" && error.kind !== "script" && error.kind !== "auth") this.#refreshSlots();
    return error;
  }

  /** After a failover the slot map is stale: ask the cluster again (throttled). */
  #refreshSlots(): void {
    const now = this.#clock();
    const client = this.#client as Cluster | undefined;
    if (!client || now - this.#lastRefresh < REFRESH_THROTTLE_US) return;
    this.#lastRefresh = now;
    client.refreshSlotsCache();
  }

  #attach(client: Redis | Cluster, mode: ValkeyMode): void {
    this.#mode = mode;
    this.#client = client;
    if (mode === "cluster") {
      const cluster = client as Cluster;
      const nodeKey = (node: Redis) => `${node.options.host}:${node.options.port}`;
      for (const node of cluster.nodes()) this.#nodes.set(nodeKey(node), node);
      cluster.on("+node", (node: Redis) => this.#nodes.set(nodeKey(node), node));
      cluster.on("-node", (node: Redis) => {
        if (this.#nodes.get(nodeKey(node)) === node) this.#nodes.delete(nodeKey(node));
      });
    }
    // Connection errors surface through the calls that fail (without a listener iovalkey would
    // print each one); the last one says why calls wait in vain.
    if (this.#ownsClient) {
      client.on("error", (error: Error) => {
        // iovalkey also reports the commands it drops on a disconnect; the socket's error says why.
        if (error.name !== "MaxRetriesPerRequestError") this.#connectionError = error;
      });
      client.on("ready", () => {
        this.#connectionError = undefined;
      });
    }
    this.emit("mode", mode);
  }

  /**
   * `auto` mode: ask the nodes what they are, retrying with backoff until one answers. The
   * returned promise resolves once the client exists; it never rejects (after `close()` it stays
   * pending, and waiting calls hit their deadline).
   */
  #detect(connection: ValkeyConnectionOptions): Promise<void> {
    return new Promise<void>((attached) => {
      const attempt = (count: number) => {
        if (this.#closed) return;
        detectMode(connection).then(
          (mode) => {
            if (this.#closed) return;
            this.#attach(createClient(connection, mode), mode);
            attached();
          },
          (error: unknown) => {
            if (this.#closed) return;
            this.#connectionError = error instanceof Error ? error : new Error(String(error));
            const delay = DETECT_DELAYS_MS[Math.min(count, DETECT_DELAYS_MS.length - 1)] as number;
            this.#detectTimer = setTimeout(() => attempt(count + 1), delay);
            this.#detectTimer.unref();
          },
        );
      };
      attempt(0);
    });
  }
}

function isScriptReply(reply: unknown): reply is ScriptReply {
  return (
    Array.isArray(reply) &&
    reply.length === 3 &&
    typeof reply[0] === "number" &&
    typeof reply[1] === "number" &&
    typeof reply[2] === "number"
  );
}
