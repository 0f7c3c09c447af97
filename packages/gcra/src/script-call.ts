import { createHash } from "node:crypto";
import type { Writable } from "node:stream";
import type { Cluster, Redis } from "iovalkey";
import { afterDeadline, DeadlineQueue, type Expiring } from "./deadline.ts";
import { failureKind, GcraStoreError, replyCode, toStoreError } from "./errors.ts";
import type { Incidents } from "./events.ts";
import { decision, type GcraDecision } from "./gcra.ts";
import type { GcraLimit } from "./limit.ts";
import { GCRA_SCRIPT } from "./script.ts";
import { ScriptCommand, type ScriptCommandOwner, ScriptEncoding } from "./script-command.ts";
import type { Topology } from "./topology.ts";

/** A Lua script and its SHA1, as EVALSHA wants it. */
export interface LuaScript {
  readonly source: string;
  readonly sha: string;
}

/** The script and SHA1 of `source`. */
export function luaScript(source: string): LuaScript {
  return { source, sha: createHash("sha1").update(source).digest("hex") };
}

const SINGLE = luaScript(GCRA_SCRIPT);

/** SHA1 of {@link GCRA_SCRIPT}, as EVALSHA wants it. */
export const GCRA_SCRIPT_SHA = SINGLE.sha;

type ScriptReply = [number, number, number];

/**
 * Whether a command can be written straight to `connection`: not when the client adds a key
 * prefix or a command timeout of its own to its commands.
 */
function writesDirectly(client: Redis | Cluster, connection: Redis): boolean {
  const { keyPrefix } = client.options as { keyPrefix?: unknown };
  return !keyPrefix && !connection.options.keyPrefix && connection.options.commandTimeout === undefined;
}

/** The decision the single-key script's reply means, or `undefined` for a reply of another shape. */
function singleDecision(limit: GcraLimit, reply: unknown): GcraDecision | undefined {
  return isScriptReply(reply) ? decision(limit, reply[0] === 1, reply[1], reply[2], "store") : undefined;
}

function unexpectedReply(reply: unknown): GcraStoreError {
  return new GcraStoreError("reply", `unexpected reply to the GCRA script: ${String(reply)}`);
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

/** How a finished call is accounted for (counters, latency, events). */
export interface CallReport {
  answered(allowed: boolean, started: number): void;
  /** Counts and reports the failure; returns the error to reject with. */
  failed(error: GcraStoreError, started: number): GcraStoreError;
}

/** Settings of {@link ScriptCalls}. */
export interface ScriptCallSettings {
  readonly timeoutMs: number;
  /** `retentionMs` as the script's argument. */
  readonly retentionArg: string;
  /** Commands per write when coalescing; 0 writes each command on its own. */
  readonly maxBatch: number;
  readonly clock: () => number;
}

/** A call waiting for its answer through the client (`evalsha`, `eval`). */
interface Pending {
  readonly settled: boolean;
  answer(reply: unknown): void;
  fail(error: unknown): void;
}

/** A script, its keys and its arguments. */
interface Invocation {
  readonly script: LuaScript;
  readonly keys: readonly string[];
  readonly args: readonly string[];
}

/** The invocation of a command written directly, to send it again through the client. */
function single(command: ScriptCommand): Invocation {
  return { script: SINGLE, keys: [command.storageKey], args: command.scriptArgs };
}

/** Cluster errors after which iovalkey's cluster client knows where to send the call again. */
const REDIRECTED = new Set(["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"]);

/**
 * The script-call path: one EVALSHA per decision (EVAL when the server answers NOSCRIPT), each
 * bounded by a deadline, with the writes of one tick coalesced per connection.
 *
 * A single decision on a ready connection is written straight to it as a {@link ScriptCommand}
 * (in a cluster: to the connection of the primary the slot map names). What that path cannot
 * serve goes through the iovalkey client: a script missing on the server, and in a cluster a
 * redirection (`MOVED`, `ASK`, …) or a node's lost connection, which the cluster client handles
 * (following the redirection, refreshing its slot map) within the same deadline.
 */
export class ScriptCalls implements ScriptCommandOwner {
  readonly #settings: ScriptCallSettings;
  readonly #topology: Topology;
  readonly #incidents: Incidents;
  readonly #report: CallReport;
  readonly #deadlines: DeadlineQueue;
  readonly #encoding: ScriptEncoding;
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
    this.#encoding = new ScriptEncoding(SINGLE.sha, settings.retentionArg);
  }

  /**
   * Runs the GCRA script for one key and settles with the decision, or with a
   * {@link GcraStoreError} at `deadline` (µs). With `queued`, the deadline is kept by the shared
   * queue (calls arrive in deadline order); otherwise by a timer of its own.
   */
  run(
    client: Redis | Cluster,
    storageKey: string,
    limit: GcraLimit,
    cost: number,
    started: number,
    deadline: number,
    queued: boolean,
  ): Promise<GcraDecision> {
    const connection = queued ? this.#topology.connectionFor(storageKey) : undefined;
    if (connection === undefined || !writesDirectly(client, connection)) {
      const parse = (reply: unknown): GcraDecision | undefined => singleDecision(limit, reply);
      const args = this.#encoding.args(limit, cost);
      return this.call(client, SINGLE, [storageKey], args, parse, started, deadline, queued);
    }
    const command = new ScriptCommand(this, this.#encoding, storageKey, limit, cost, started, deadline);
    command.ticket = this.#deadlines.add(command);
    if (this.#settings.maxBatch > 0) this.#coalesce(connection);
    connection.sendCommand(command as unknown as Parameters<Redis["sendCommand"]>[0]);
    return command.promise;
  }

  /** {@link ScriptCommandOwner}: the reply to a command written directly. */
  answer(command: ScriptCommand, reply: unknown): void {
    if (!this.#settle(command)) return;
    const result = singleDecision(command.limit, reply);
    if (result === undefined) {
      command.rejectWith(this.#report.failed(unexpectedReply(reply), command.started));
      return;
    }
    this.#answered = true;
    if (this.#incidents.anyDown) this.#incidents.answered(this.#topology.nodeOf(command.storageKey));
    this.#report.answered(result.allowed, command.started);
    command.resolveWith(result);
  }

  /** {@link ScriptCommandOwner}: an error reply, or the connection lost, for a command written directly. */
  fail(command: ScriptCommand, error: unknown): void {
    if (command.settled) return;
    const client = this.#topology.client;
    const code = replyCode(error);
    if (client !== undefined && code === "NOSCRIPT") {
      this.#reload(client, single(command), this.#retried(command));
    } else if (
      client !== undefined &&
      this.#topology.mode === "cluster" &&
      (REDIRECTED.has(code ?? "") || failureKind(error) === "connection")
    ) {
      this.#evalsha(client, single(command), this.#retried(command));
    } else if (this.#settle(command)) {
      command.rejectWith(this.#report.failed(toStoreError(error), command.started));
    }
  }

  /** {@link ScriptCommandOwner}: the deadline of a command written directly passed. */
  expire(command: ScriptCommand): void {
    if (command.settled) return;
    command.settled = true;
    command.rejectWith(this.#timedOut(command.started, command.deadline));
  }

  /**
   * Runs `script` on `keys` (all of one slot in a cluster) with `args` and settles with what
   * `parse` makes of the reply (`undefined`: an unexpected reply, a failure of kind `reply`), or
   * with a {@link GcraStoreError} at `deadline` (µs). With `queued`, the deadline is kept by the shared
   * queue (calls arrive in deadline order); otherwise by a timer of its own.
   */
  call<T extends { readonly allowed: boolean }>(
    client: Redis | Cluster,
    script: LuaScript,
    keys: readonly string[],
    args: readonly string[],
    parse: (reply: unknown) => T | undefined,
    started: number,
    deadline: number,
    queued: boolean,
  ): Promise<T> {
    const storageKey = keys[0] as string;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let cancel: (() => void) | undefined;
      const call: Expiring = {
        deadline,
        expire: () => {
          if (settled) return;
          settled = true;
          reject(this.#timedOut(started, deadline));
        },
      };
      let ticket = -1;
      if (queued) ticket = this.#deadlines.add(call);
      else cancel = afterDeadline((deadline - this.#settings.clock()) / 1000, call.expire);
      /** Marks the call answered; false when it already was (or expired). */
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        if (queued) this.#deadlines.delete(ticket);
        else cancel?.();
        return true;
      };
      const pending: Pending = {
        get settled() {
          return settled;
        },
        answer: (reply: unknown) => {
          if (!settle()) return;
          const result = parse(reply);
          if (result === undefined) {
            reject(this.#report.failed(unexpectedReply(reply), started));
            return;
          }
          this.#answered = true;
          if (this.#incidents.anyDown) this.#incidents.answered(this.#topology.nodeOf(storageKey));
          this.#report.answered(result.allowed, started);
          resolve(result);
        },
        fail: (error: unknown) => {
          if (settle()) reject(this.#report.failed(toStoreError(error), started));
        },
      };
      if (this.#settings.maxBatch > 0) this.#coalesce(this.#topology.connectionFor(storageKey));
      this.#evalsha(client, { script, keys, args }, pending);
    });
  }

  /** EVALSHA through the client; on NOSCRIPT, {@link #reload}. */
  #evalsha(client: Redis | Cluster, invocation: Invocation, pending: Pending): void {
    const { script, keys, args } = invocation;
    client.evalsha(script.sha, keys.length, ...keys, ...args).then(
      (reply) => pending.answer(reply),
      (error: unknown) => {
        if (pending.settled) return;
        if (replyCode(error) === "NOSCRIPT") this.#reload(client, invocation, pending);
        else pending.fail(error);
      },
    );
  }

  /** The server lost its script cache: EVAL sends the script once more, which caches it again. */
  #reload(client: Redis | Cluster, { script, keys, args }: Invocation, pending: Pending): void {
    const node = this.#topology.nodeOf(keys[0] as string);
    // Outside a cluster every call goes to one node: one answer says the script ran there.
    // A cluster's nodes are not told apart on the hot path, so there a node's first
    // NOSCRIPT counts as the first load.
    this.#incidents.reloading(node, !this.#answered || this.#topology.mode === "cluster");
    client.eval(script.source, keys.length, ...keys, ...args).then(
      (reply) => {
        this.#incidents.reloaded(node);
        pending.answer(reply);
      },
      (error: unknown) => pending.fail(error),
    );
  }

  /** A command written directly, retried through the client. */
  #retried(command: ScriptCommand): Pending {
    return {
      get settled() {
        return command.settled;
      },
      answer: (reply) => this.answer(command, reply),
      fail: (error) => {
        if (this.#settle(command)) {
          command.rejectWith(this.#report.failed(toStoreError(error), command.started));
        }
      },
    };
  }

  /** Marks a command written directly settled; false when it already was. */
  #settle(command: ScriptCommand): boolean {
    if (command.settled) return false;
    command.settled = true;
    this.#deadlines.delete(command.ticket);
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
}
