import { nextTick } from "node:process";
import type { Writable } from "node:stream";
import type { Cluster, Redis } from "iovalkey";
import { afterDeadline, DeadlineQueue } from "./deadline.ts";
import { failureKind, GcraStoreError, replyCode, toStoreError } from "./errors.ts";
import type { Incidents } from "./events.ts";
import { type Decided, type ScriptCodec, ScriptCommand, type ScriptCommandOwner } from "./script-command.ts";
import type { Topology } from "./topology.ts";

/** A call of any script, as the owner of its commands sees it. */
type AnyCommand = ScriptCommand<unknown, unknown, Decided>;

/**
 * Whether a command can be written straight to `connection`: not when the client adds a key
 * prefix or a command timeout of its own to its commands.
 */
function writesDirectly(client: Redis | Cluster, connection: Redis): boolean {
  const { keyPrefix } = client.options as { keyPrefix?: unknown };
  return !keyPrefix && !connection.options.keyPrefix && connection.options.commandTimeout === undefined;
}

function unexpectedReply(reply: unknown): GcraStoreError {
  return new GcraStoreError("reply", `unexpected reply to the GCRA script: ${String(reply)}`);
}

/** How a finished call is accounted for (counters, latency, events). */
export interface CallReport {
  answered(allowed: boolean, started: number): void;
  /** Counts and reports the failure; returns the error to reject with. */
  failed(error: GcraStoreError, started: number): GcraStoreError;
}

/** Settings of {@link ScriptCalls}. */
export interface ScriptCallSettings {
  readonly timeoutMs: number;
  /** Commands per write when coalescing; 0 writes each command on its own. */
  readonly maxBatch: number;
  readonly clock: () => number;
}

/** Cluster errors after which iovalkey's cluster client knows where to send the call again. */
const REDIRECTED = new Set(["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"]);

/**
 * The script-call path: one EVALSHA per call (EVAL when the server answers NOSCRIPT), each
 * bounded by a deadline, with the writes of one tick coalesced per connection. Any script whose
 * calls a {@link ScriptCodec} encodes takes it: the single-key script of a decision, the
 * multi-key script of a request decided over several limits.
 *
 * A call on a ready connection is written straight to it as a {@link ScriptCommand} (in a
 * cluster: to the connection of the primary the slot map names). What that path cannot serve
 * goes through the iovalkey client: a script missing on the server, and in a cluster a
 * redirection (`MOVED`, `ASK`, …) or a node's lost connection, which the cluster client handles
 * (following the redirection, refreshing its slot map) within the same deadline.
 */
export class ScriptCalls implements ScriptCommandOwner {
  readonly #settings: ScriptCallSettings;
  readonly #topology: Topology;
  readonly #incidents: Incidents;
  readonly #report: CallReport;
  readonly #deadlines: DeadlineQueue;
  /** Connections whose writes are being coalesced in this tick, and commands in each batch. */
  readonly #corked: Writable[] = [];
  readonly #batched: number[] = [];
  /** Whether a script call was answered yet: until then NOSCRIPT is the first load, not a reload. */
  #answered = false;

  constructor(settings: ScriptCallSettings, topology: Topology, incidents: Incidents, report: CallReport) {
    this.#settings = settings;
    this.#topology = topology;
    this.#incidents = incidents;
    this.#report = report;
    this.#deadlines = new DeadlineQueue(settings.clock);
  }

  /**
   * Runs `codec`'s script on `keys` (all of one slot in a cluster) with `subject` and `cost`,
   * and settles with what the reply means, or with a {@link GcraStoreError} at `deadline` (µs).
   * With `queued`, the deadline is kept by the shared queue (calls arrive in deadline order) and
   * the call is written directly when it can be; otherwise the deadline is kept by a timer of
   * its own and the call goes through the client.
   */
  run<K, S, T extends Decided>(
    codec: ScriptCodec<K, S, T>,
    client: Redis | Cluster,
    keys: K,
    subject: S,
    cost: number,
    started: number,
    deadline: number,
    queued: boolean,
  ): Promise<T> {
    const command = new ScriptCommand(this, codec, keys, subject, cost, started, deadline);
    const key = command.key;
    if (!queued) {
      const expire = (): void => this.expire(command);
      command.cancel = afterDeadline((deadline - this.#settings.clock()) / 1000, expire);
      if (this.#settings.maxBatch > 0) this.#coalesce(this.#topology.connectionFor(key));
      this.#evalsha(client, command);
      return command.promise;
    }
    command.ticket = this.#deadlines.add(command);
    const connection = this.#topology.connectionFor(key);
    if (this.#settings.maxBatch > 0) this.#coalesce(connection);
    if (connection !== undefined && writesDirectly(client, connection)) {
      connection.sendCommand(command as unknown as Parameters<Redis["sendCommand"]>[0]);
    } else {
      this.#evalsha(client, command);
    }
    return command.promise;
  }

  /** {@link ScriptCommandOwner}: the reply to a call. */
  answer(command: AnyCommand, reply: unknown): void {
    if (!this.#settle(command)) return;
    const result = command.settleWith(reply);
    if (result === undefined) {
      command.rejectWith(this.#report.failed(unexpectedReply(reply), command.started));
      return;
    }
    this.#answered = true;
    if (this.#incidents.anyDown) this.#incidents.answered(this.#topology.nodeOf(command.key));
    this.#report.answered(result.allowed, command.started);
  }

  /**
   * {@link ScriptCommandOwner}: an error reply, or the connection lost, for a call written
   * directly: NOSCRIPT loads the script again, and in a cluster the client retries what it can
   * redirect or reconnect; within the call's deadline.
   */
  fail(command: AnyCommand, error: unknown): void {
    if (command.settled) return;
    const client = this.#topology.client;
    const code = replyCode(error);
    if (client !== undefined && code === "NOSCRIPT") {
      this.#reload(client, command);
    } else if (client !== undefined && this.#topology.mode === "cluster" && REDIRECTED.has(code ?? "")) {
      this.#evalsha(client, command);
    } else if (
      client !== undefined &&
      this.#topology.mode === "cluster" &&
      failureKind(error) === "connection"
    ) {
      // A node's connection rejects what it holds before it ends, and only its end takes it out
      // of the cluster client's pool: sent now, the call would meet the same closed connection.
      setImmediate(() => {
        if (!command.settled) this.#evalsha(client, command);
      });
    } else {
      this.#failed(command, error);
    }
  }

  /** {@link ScriptCommandOwner}: the call's deadline passed. */
  expire(command: AnyCommand): void {
    if (command.settled) return;
    command.settled = true;
    command.rejectWith(this.#timedOut(command.started, command.deadline));
  }

  /** EVALSHA through the client; on NOSCRIPT, {@link #reload}. */
  #evalsha(client: Redis | Cluster, command: AnyCommand): void {
    const { script } = command.codec;
    const keys = command.scriptKeys;
    client.evalsha(script.sha, keys.length, ...keys, ...command.scriptArgs).then(
      (reply) => this.answer(command, reply),
      (error: unknown) => {
        if (command.settled) return;
        if (replyCode(error) === "NOSCRIPT") this.#reload(client, command);
        else this.#failed(command, error);
      },
    );
  }

  /** The server lost its script cache: EVAL sends the script once more, which caches it again. */
  #reload(client: Redis | Cluster, command: AnyCommand): void {
    const { script } = command.codec;
    const keys = command.scriptKeys;
    const node = this.#topology.nodeOf(command.key);
    // Outside a cluster every call goes to one node: one answer says the script ran there.
    // A cluster's nodes are not told apart on the hot path, so there a node's first
    // NOSCRIPT counts as the first load.
    this.#incidents.reloading(node, !this.#answered || this.#topology.mode === "cluster");
    client.eval(script.source, keys.length, ...keys, ...command.scriptArgs).then(
      (reply) => {
        this.#incidents.reloaded(node);
        this.answer(command, reply);
      },
      (error: unknown) => this.#failed(command, error),
    );
  }

  /** Settles a call with `error` (counted and reported), unless it already settled. */
  #failed(command: AnyCommand, error: unknown): void {
    if (this.#settle(command)) {
      command.rejectWith(this.#report.failed(toStoreError(error), command.started));
    }
  }

  /** Marks a call settled and forgets its deadline; false when it already was settled. */
  #settle(command: AnyCommand): boolean {
    if (command.settled) return false;
    command.settled = true;
    this.#deadlines.delete(command.ticket);
    command.cancel?.();
    return true;
  }
  #timedOut(started: number, deadline: number): GcraStoreError {
    const ms = Math.round((deadline - started) / 1000);
    return this.#report.failed(
      new GcraStoreError("timeout", `no answer from Valkey within ${ms} ms`),
      started,
    );
  }

  /** Writes what is corked now (pending calls still settle, by answer or deadline). */
  close(): void {
    this.#flush();
  }

  /**
   * Auto-pipelining: cork a connection's stream at its first command of a tick and uncork it at
   * the end of the tick, or every `maxBatch` commands — one write per batch and connection.
   */
  #coalesce(connection: Redis | undefined): void {
    if (connection === undefined) return;
    const stream = connection.stream as Writable;
    const at = this.#corked.indexOf(stream);
    if (at >= 0) {
      const batched = (this.#batched[at] as number) + 1;
      if (batched >= this.#settings.maxBatch) {
        stream.uncork();
        stream.cork();
        this.#batched[at] = 0;
      } else {
        this.#batched[at] = batched;
      }
      return;
    }
    if (this.#corked.length === 0) nextTick(this.#flush);
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
}
