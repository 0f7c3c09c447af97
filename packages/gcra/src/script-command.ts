import type { Expiring } from "./deadline.ts";
import type { LuaScript } from "./resp.ts";

/** What a script call settles with: a decision, single or over several limits. */
export interface Decided {
  readonly allowed: boolean;
}

/**
 * A script call's shape: its script, how a call is encoded as RESP and what its reply means.
 * `K` are the call's keys as the caller holds them (one storage key, or an array of them), `S`
 * what it decides with (a limit, or the requests); `cost` is the call's own weight where the
 * script takes one (the single-key script), otherwise 0.
 */
export interface ScriptCodec<K, S, T extends Decided> {
  readonly script: LuaScript;
  /** The key that places the call: its node, its slot (every key of a call shares its slot). */
  keyOf(keys: K): string;
  /** The script's `KEYS`, as strings (for a call through the client). */
  keys(keys: K): readonly string[];
  /** The script's `ARGV`, as strings (for a call through the client). */
  args(subject: S, cost: number): readonly string[];
  /** The whole command's RESP (`EVALSHA sha numkeys keys… args…`). */
  encode(keys: K, subject: S, cost: number): Buffer;
  /** What the reply means, or `undefined` for a reply of another shape. */
  parse(subject: S, reply: unknown): T | undefined;
}

/** What settles a {@link ScriptCommand}: the reply, an error, or its deadline. */
export interface ScriptCommandOwner {
  answer(command: ScriptCommand<unknown, unknown, Decided>, reply: unknown): void;
  fail(command: ScriptCommand<unknown, unknown, Decided>, error: unknown): void;
  expire(command: ScriptCommand<unknown, unknown, Decided>): void;
}

/** The promise's settle functions, handed out by {@link capture} while the promise is made. */
let resolveNext: (value: Decided) => void = () => {};
let rejectNext: (error: Error) => void = () => {};
function capture(resolve: (value: Decided) => void, reject: (error: Error) => void): void {
  resolveNext = resolve;
  rejectNext = reject;
}

/**
 * One script call, for any {@link ScriptCodec}: at once the call waiting for its answer, its
 * deadline (in the deadline queue, or a timer of its own) and, on a ready connection, the
 * iovalkey command written straight to it (`Redis#sendCommand`) — so a decision costs one object
 * besides its promise, where iovalkey's own command builds an argument array, looks up the keys,
 * and chains several promises and closures. Sent through the client instead, it is the call its
 * reply or error comes back to.
 *
 * It has what iovalkey's connection uses of a command: `name` and `args` (flags, error reports),
 * `toWritable()` (the bytes), `resolve(reply)` and `reject(error)` (reply, error reply, or the
 * connection's loss). Written directly only to connections without `keyPrefix` or
 * `commandTimeout`, which iovalkey would apply to its own commands.
 */
export class ScriptCommand<K, S, T extends Decided> implements Expiring {
  readonly name = "evalsha";
  readonly inTransaction = false;
  readonly promise: Promise<T>;
  readonly codec: ScriptCodec<K, S, T>;
  readonly target: K;
  readonly subject: S;
  readonly cost: number;
  readonly started: number;
  readonly deadline: number;
  /** The deadline queue's ticket (-1: not in the queue). */
  ticket = -1;
  /** Cancels the timer of a call whose deadline the queue does not keep. */
  cancel: (() => void) | undefined = undefined;
  /** Answered, failed or expired: later news about it is ignored. */
  settled = false;
  readonly #owner: ScriptCommandOwner;
  /** Resolves {@link promise} (with a `T`: typed wider so that any command is an owner's). */
  readonly #resolve: (value: Decided) => void;
  readonly #reject: (error: Error) => void;

  constructor(
    owner: ScriptCommandOwner,
    codec: ScriptCodec<K, S, T>,
    target: K,
    subject: S,
    cost: number,
    started: number,
    deadline: number,
  ) {
    this.#owner = owner;
    this.codec = codec;
    this.target = target;
    this.subject = subject;
    this.cost = cost;
    this.started = started;
    this.deadline = deadline;
    this.promise = new Promise<T>(
      capture as (resolve: (value: T) => void, reject: (error: Error) => void) => void,
    );
    this.#resolve = resolveNext;
    this.#reject = rejectNext;
  }

  /** The key that places the call. */
  get key(): string {
    return this.codec.keyOf(this.target);
  }

  /** The script's `KEYS`. */
  get scriptKeys(): readonly string[] {
    return this.codec.keys(this.target);
  }

  /** The script's `ARGV`. */
  get scriptArgs(): readonly string[] {
    return this.codec.args(this.subject, this.cost);
  }

  /** The whole command's arguments, as iovalkey reports them with an error reply. */
  get args(): string[] {
    const keys = this.scriptKeys;
    return [this.codec.script.sha, String(keys.length), ...keys, ...this.scriptArgs];
  }

  toWritable(): Buffer {
    return this.codec.encode(this.target, this.subject, this.cost);
  }

  /** Settles with what `reply` means; `undefined` (and nothing settled) for a reply of another shape. */
  settleWith(reply: unknown): T | undefined {
    const result = this.codec.parse(this.subject, reply);
    if (result !== undefined) this.#resolve(result);
    return result;
  }

  /** Settles with `error`. */
  rejectWith(error: Error): void {
    this.#reject(error);
  }

  resolve(reply: unknown): void {
    this.#owner.answer(this, reply);
  }

  reject(error: unknown): void {
    this.#owner.fail(this, error);
  }

  expire(): void {
    this.#owner.expire(this);
  }
}
