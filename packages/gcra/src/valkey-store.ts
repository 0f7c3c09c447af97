import { EventEmitter } from "node:events";
import type { Cluster, Redis } from "iovalkey";
import { afterDeadline } from "./deadline.ts";
import { FAILURE_KINDS, type FailureKind, GcraOptionError, GcraStoreError, toStoreError } from "./errors.ts";
import { Incidents } from "./events.ts";
import type { GcraDecision } from "./gcra.ts";
import { keySlot } from "./key-slot.ts";
import { type GcraLimit, invalidInput, PROBE_LIMIT } from "./limit.ts";
import type { GcraMultiDecision, GcraRequest } from "./multi.ts";
import { invalidRequests } from "./multi.ts";
import { MultiCodec } from "./multi-script.ts";
import { RespSlab } from "./resp.ts";
import { SingleCodec } from "./script.ts";
import { ScriptCalls } from "./script-call.ts";
import { ALL_KEYS, type GcraStore } from "./store.ts";
import { type StoreSettings, storeSettings, type ValkeyStoreOptions } from "./store-options.ts";
import { Topology } from "./topology.ts";
import type { ValkeyMode } from "./valkey-types.ts";

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
  /** Calls made (validation failures excluded, warm-up included). */
  readonly calls: number;
  /** Calls answered, allowed (warm-up calls included). */
  readonly allowed: number;
  /** Calls answered, denied. */
  readonly denied: number;
  /** Failed calls by kind. */
  readonly failures: Readonly<Record<FailureKind, number>>;
}

/** Keys of the warm-up calls; under the store's prefix, like every key, so an ACL allows them. */
const warmUpKey = (i: number) => `warm-up:${i}`;

/**
 * GCRA on Valkey/Redis (standalone, sentinel-managed or cluster) through iovalkey: one Lua script
 * per decision (`GCRA_SCRIPT`), atomic per key, on the server's clock; auto-pipelined, so
 * concurrent decisions share round trips; each call bounded by a deadline.
 *
 * The store can be created while Valkey is unreachable: calls then fail (kind `connection` or
 * `timeout`) until it is reachable — wrap it in a `PolicyStore` to decide what that means, and
 * call {@link warmUp} before taking traffic. Scripts missing on a server (`NOSCRIPT` after
 * `SCRIPT FLUSH`, a restart or a failover) are loaded again transparently.
 */
export class ValkeyStore extends EventEmitter<ValkeyStoreEvents> implements GcraStore {
  readonly #settings: StoreSettings;
  readonly #clock: () => number;
  readonly #incidents: Incidents;
  readonly #topology: Topology;
  readonly #calls: ScriptCalls;
  readonly #single: SingleCodec;
  readonly #multi: MultiCodec;
  #closed = false;
  #callCount = 0;
  #allowed = 0;
  #denied = 0;
  readonly #failures: Record<FailureKind, number> = Object.fromEntries(
    FAILURE_KINDS.map((k) => [k, 0]),
  ) as Record<FailureKind, number>;

  /** @throws GcraOptionError for invalid options (no nodes, a bad URL or mode, a bad timeout or retention). */
  constructor(options: ValkeyStoreOptions) {
    super();
    const settings = storeSettings(options);
    this.#settings = settings;
    this.#clock = settings.clock;
    this.#incidents = new Incidents(options.onEvent, settings.clock, settings.repeatIntervalMs);
    this.#topology = new Topology({
      ...(settings.connection !== undefined ? { connection: settings.connection } : {}),
      ...(options.client !== undefined ? { client: options.client } : {}),
      clock: settings.clock,
      incidents: this.#incidents,
      onMode: (mode) => this.emit("mode", mode),
    });
    const slab = new RespSlab();
    this.#single = new SingleCodec(settings.retentionArg, slab);
    this.#multi = new MultiCodec(settings.retentionArg, slab);
    this.#calls = new ScriptCalls(settings, this.#topology, this.#incidents, {
      answered: (allowed, started) => {
        if (allowed) this.#allowed++;
        else this.#denied++;
        // emit() gathers its arguments into an array even when nobody listens.
        if (this.listenerCount("latency") > 0) this.emit("latency", this.#clock() - started, true);
      },
      failed: (error, started) => this.#failed(error, started),
    });
  }

  /** The deployment's mode, once known (`auto` detection settles it in the background). */
  get mode(): ValkeyMode | undefined {
    return this.#topology.mode;
  }

  /** The iovalkey client, once created. */
  get client(): Redis | Cluster | undefined {
    return this.#topology.client;
  }

  /** Whether the client is connected and ready. */
  get connected(): boolean {
    return this.#topology.readyClient !== undefined;
  }

  /** The Valkey key a rate-limit key is stored under. */
  storageKey(key: string): string {
    const { hashTag, keyPrefix } = this.#settings;
    return hashTag ? `${keyPrefix}{${key}}` : keyPrefix + key;
  }

  /**
   * The partition holding `key`: in cluster mode the `host:port` of the primary that serves the
   * key's slot (per the client's slot map, which follows failovers); otherwise, and while the
   * slot map is unknown, {@link ALL_KEYS}. A `PolicyStore` keeps one circuit per partition,
   * so a failing shard hands only its own keys to the failure policy.
   */
  partitionOf(key: string): string {
    // Outside a cluster there is one partition: no storage key to build.
    if (this.#topology.mode !== "cluster") return ALL_KEYS;
    return this.#topology.partitionOf(this.storageKey(key));
  }

  /** Every partition known now: the primaries serving slots in cluster mode, else {@link ALL_KEYS}. */
  partitions(): readonly string[] {
    return this.#topology.partitions();
  }

  /** Counters since construction. */
  stats(): ValkeyStoreStats {
    return {
      mode: this.mode,
      connected: this.connected,
      calls: this.#callCount,
      allowed: this.#allowed,
      denied: this.#denied,
      failures: { ...this.#failures },
    };
  }

  /**
   * {@inheritDoc GcraStore.check}
   *
   * Rejects with a {@link GcraStoreError} when Valkey does not answer within the deadline or
   * answers with an error; the error's `kind` (and `code`) says why.
   */
  check(key: string, limit: GcraLimit, cost = 1): Promise<GcraDecision> {
    const invalid = invalidInput(key, limit, cost);
    if (invalid) return Promise.reject(invalid);
    this.#callCount++;
    const started = this.#clock();
    const deadline = started + this.#settings.timeoutMs * 1000;
    const client = this.#topology.readyClient;
    if (client !== undefined) {
      return this.#calls.run(
        this.#single,
        client,
        this.storageKey(key),
        limit,
        cost,
        started,
        deadline,
        true,
      );
    }
    const storageKey = this.storageKey(key);
    return this.#readyClient(started, deadline).then((ready) =>
      this.#calls.run(this.#single, ready, storageKey, limit, cost, started, deadline, false),
    );
  }

  /**
   * {@inheritDoc GcraStore.checkAll}
   *
   * One script call (`GCRA_MULTI_SCRIPT`) decides the whole request atomically on one node:
   * standalone, sentinel and replication always; a cluster when every key lands on one slot
   * (give `keyPrefix` a hash tag such as `{rl}:`, which pins every key to one slot). On a cluster
   * whose keys of one request span several slots, one call per slot is sent, concurrently: each
   * slot's part is all or nothing, but a slot whose limits allow consumes even when another
   * slot's deny the request (as separate checks would). Rejects like {@link check}.
   */
  checkAll(requests: readonly GcraRequest[]): Promise<GcraMultiDecision> {
    const invalid = invalidRequests(requests);
    if (invalid) return Promise.reject(invalid);
    const keys: string[] = new Array(requests.length);
    for (let i = 0; i < requests.length; i++) keys[i] = this.storageKey((requests[i] as GcraRequest).key);
    if (this.mode === "cluster" && !oneSlot(keys))
      return this.#checkPerSlot(requests, keys, slotGroups(keys));
    return this.#checkOneSlot(requests, keys);
  }

  /**
   * {@inheritDoc GcraStore.warmUp}
   *
   * Waits for the mode and the connection, then sends a cost-0 check (which changes no state)
   * for a key of every partition — opening each cluster node's connection and loading the
   * script where it is missing — until a round succeeds on every partition known at its start.
   */
  async warmUp(budgetMs: number): Promise<boolean> {
    if (!Number.isFinite(budgetMs) || budgetMs < 0) {
      throw new GcraOptionError(`the warm-up budget must be finite and ≥ 0 ms, got ${budgetMs}`);
    }
    const deadline = this.#clock() + budgetMs * 1000;
    while (!this.#closed && this.#clock() < deadline) {
      const ready = await this.#waitUntil(this.#topology.whenReady(), deadline);
      const client = this.#topology.readyClient;
      if (!ready || client === undefined) return false;
      const partitions = this.partitions().length;
      const results = await Promise.allSettled(
        this.#keysPerPartition().map((key) => {
          this.#callCount++;
          return this.#calls.run(
            this.#single,
            client,
            this.storageKey(key),
            PROBE_LIMIT,
            0,
            this.#clock(),
            deadline,
            false,
          );
        }),
      );
      // Known partitions may grow once the first call has loaded a cluster's slot map.
      if (results.every((r) => r.status === "fulfilled") && this.partitions().length === partitions) {
        return true;
      }
      const pauseMs = Math.min(50, (deadline - this.#clock()) / 1000);
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
    return false;
  }

  /** Closes the connection (unless the client was passed in) and stops background work. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#calls.close();
    await this.#topology.close();
  }

  /** One key per partition, found by trying warm-up keys until each partition has one. */
  #keysPerPartition(): string[] {
    const wanted = new Set(this.partitions());
    const keys: string[] = [];
    for (let i = 0; wanted.size > 0 && i < 100_000; i++) {
      if (wanted.delete(this.partitionOf(warmUpKey(i)))) keys.push(warmUpKey(i));
    }
    return keys;
  }

  #checkOneSlot(requests: readonly GcraRequest[], keys: readonly string[]): Promise<GcraMultiDecision> {
    this.#callCount++;
    const started = this.#clock();
    const deadline = started + this.#settings.timeoutMs * 1000;
    const client = this.#topology.readyClient;
    if (client !== undefined) {
      return this.#calls.run(this.#multi, client, keys, requests, 0, started, deadline, true);
    }
    return this.#readyClient(started, deadline).then((ready) =>
      this.#calls.run(this.#multi, ready, keys, requests, 0, started, deadline, false),
    );
  }

  async #checkPerSlot(
    requests: readonly GcraRequest[],
    keys: readonly string[],
    groups: readonly number[][],
  ): Promise<GcraMultiDecision> {
    const results = await Promise.all(
      groups.map((group) =>
        this.#checkOneSlot(
          group.map((i) => requests[i] as GcraRequest),
          group.map((i) => keys[i] as string),
        ),
      ),
    );
    const decisions: GcraDecision[] = new Array(requests.length);
    groups.forEach((group, g) => {
      const { decisions: part } = results[g] as GcraMultiDecision;
      group.forEach((i, j) => {
        decisions[i] = part[j] as GcraDecision;
      });
    });
    return { allowed: results.every((r) => r.allowed), decisions, source: "store" };
  }

  /** The slow path: wait (within the deadline) for the mode to be known and the client to be ready. */
  async #readyClient(started: number, deadline: number): Promise<Redis | Cluster> {
    if (this.#closed) throw this.#failed(new GcraStoreError("connection", "the store is closed"), started);
    const ready = await this.#waitUntil(this.#topology.whenReady(), deadline);
    const client = this.#topology.readyClient;
    if (!ready || client === undefined) {
      const { timeoutMs } = this.#settings;
      const detail = `${this.mode === undefined ? "no Valkey node answered yet" : "not connected to Valkey"} within ${timeoutMs} ms`;
      const cause = this.#topology.connectionError;
      // Say why when the last attempt to connect failed: refused, a TLS handshake, a password.
      const error = cause
        ? new GcraStoreError(toStoreError(cause).kind, `${detail}: ${cause.message}`, { cause })
        : new GcraStoreError("timeout", detail);
      throw this.#failed(error, started);
    }
    return client;
  }

  /** Resolves true when `promise` settles successfully before `deadline` (µs, own clock), false otherwise. */
  #waitUntil(promise: Promise<void>, deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const cancel = afterDeadline((deadline - this.#clock()) / 1000, () => resolve(false));
      promise.then(
        () => {
          cancel();
          resolve(true);
        },
        () => {
          cancel();
          resolve(false);
        },
      );
    });
  }

  #failed(error: GcraStoreError, started: number): GcraStoreError {
    this.#failures[error.kind]++;
    this.emit("latency", this.#clock() - started, false);
    this.emit("failure", error);
    this.#incidents.callFailed(error);
    this.#topology.failed(error);
    return error;
  }
}

/** Whether every key of `keys` lands on the first one's cluster slot. */
function oneSlot(keys: readonly string[]): boolean {
  if (keys.length === 1) return true;
  const slot = keySlot(keys[0] as string);
  for (let i = 1; i < keys.length; i++) if (keySlot(keys[i] as string) !== slot) return false;
  return true;
}

/** The indexes of `keys` grouped by cluster slot, in order of first appearance. */
function slotGroups(keys: readonly string[]): number[][] {
  const bySlot = new Map<number, number[]>();
  keys.forEach((key, i) => {
    const slot = keySlot(key);
    const group = bySlot.get(slot);
    if (group === undefined) bySlot.set(slot, [i]);
    else group.push(i);
  });
  return [...bySlot.values()];
}
