import type { Expiring } from "./deadline.ts";
import type { GcraDecision } from "./gcra.ts";
import type { GcraLimit } from "./limit.ts";

/** What settles a {@link ScriptCommand}: the reply, an error, or its deadline. */
export interface ScriptCommandOwner {
  answer(command: ScriptCommand, reply: unknown): void;
  fail(command: ScriptCommand, error: unknown): void;
  expire(command: ScriptCommand): void;
}

/** `bulk string` in RESP. */
function bulk(value: string): string {
  return `$${Buffer.byteLength(value)}\r\n${value}\r\n`;
}

/** Bytes of one slab that commands are encoded into; a new one is taken when it is full. */
const SLAB_BYTES = 64 * 1024;

/**
 * Encodes single-key script calls. The RESP of `EVALSHA sha 1` — the part of every call that
 * never changes — is encoded once, and per limit the arguments after the key (cost 1, the
 * store's retention); a call copies them and its key into a slab and is written as a view of
 * it. A slab is never written over: the views written in a batch keep theirs alive until the
 * socket is done with them, and a full slab is simply left to them.
 */
export class ScriptEncoding {
  readonly sha: string;
  readonly retentionArg: string;
  readonly #prefix: Buffer;
  readonly #suffixes = new WeakMap<GcraLimit, Buffer>();
  #slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  #offset = 0;

  constructor(sha: string, retentionArg: string) {
    this.sha = sha;
    this.retentionArg = retentionArg;
    this.#prefix = Buffer.from(`*8\r\n$7\r\nevalsha\r\n${bulk(sha)}${bulk("1")}`, "latin1");
  }

  /** The script's arguments after the key, as strings. */
  args(limit: GcraLimit, cost: number): string[] {
    return [
      String(limit.emissionIntervalUs),
      String(limit.burstToleranceUs),
      String(cost),
      this.retentionArg,
    ];
  }

  /** The whole command's RESP. */
  encode(storageKey: string, limit: GcraLimit, cost: number): Buffer {
    const suffix = this.#suffix(limit, cost);
    const keyBytes = Buffer.byteLength(storageKey);
    const keyLength = String(keyBytes);
    const size = this.#prefix.length + keyLength.length + keyBytes + 5 + suffix.length;
    if (this.#offset + size > this.#slab.length) {
      this.#slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, size));
      this.#offset = 0;
    }
    const slab = this.#slab;
    const start = this.#offset;
    let at = start + this.#prefix.copy(slab, start);
    slab[at++] = 0x24; // $
    at += slab.write(keyLength, at, "latin1");
    slab[at++] = 0x0d;
    slab[at++] = 0x0a;
    at += slab.write(storageKey, at, "utf8");
    slab[at++] = 0x0d;
    slab[at++] = 0x0a;
    at += suffix.copy(slab, at);
    this.#offset = at;
    return slab.subarray(start, at);
  }

  /** The RESP of the arguments after the key (kept per limit for cost 1). */
  #suffix(limit: GcraLimit, cost: number): Buffer {
    if (cost !== 1) return this.#encodeArgs(limit, cost);
    let suffix = this.#suffixes.get(limit);
    if (suffix === undefined) {
      suffix = this.#encodeArgs(limit, 1);
      this.#suffixes.set(limit, suffix);
    }
    return suffix;
  }

  #encodeArgs(limit: GcraLimit, cost: number): Buffer {
    let suffix = "";
    for (const arg of this.args(limit, cost)) suffix += bulk(arg);
    return Buffer.from(suffix, "latin1");
  }
}

/** The promise's settle functions, handed out by {@link capture} while the promise is made. */
let resolveNext: (decision: GcraDecision) => void = () => {};
let rejectNext: (error: Error) => void = () => {};
function capture(resolve: (decision: GcraDecision) => void, reject: (error: Error) => void): void {
  resolveNext = resolve;
  rejectNext = reject;
}

/**
 * One GCRA decision as an iovalkey command written straight to a connection
 * (`Redis#sendCommand`): it carries its own RESP and is at once the call waiting for its answer
 * and its deadline, so a decision costs one object besides its promise — where iovalkey's own
 * command builds an argument array, looks up the keys, and chains several promises and closures.
 *
 * It has what iovalkey's connection uses of a command: `name` and `args` (flags, error reports),
 * `toWritable()` (the bytes), `resolve(reply)` and `reject(error)` (reply, error reply, or the
 * connection's loss). Used only on connections without `keyPrefix` or `commandTimeout`, which
 * iovalkey would apply to its own commands.
 */
export class ScriptCommand implements Expiring {
  readonly name = "evalsha";
  readonly inTransaction = false;
  readonly promise: Promise<GcraDecision>;
  readonly resolveWith: (decision: GcraDecision) => void;
  readonly rejectWith: (error: Error) => void;
  readonly storageKey: string;
  readonly limit: GcraLimit;
  readonly cost: number;
  readonly started: number;
  readonly deadline: number;
  /** The deadline queue's ticket. */
  ticket = -1;
  /** Answered, failed or expired: later news about it is ignored. */
  settled = false;
  readonly #owner: ScriptCommandOwner;
  readonly #encoding: ScriptEncoding;

  constructor(
    owner: ScriptCommandOwner,
    encoding: ScriptEncoding,
    storageKey: string,
    limit: GcraLimit,
    cost: number,
    started: number,
    deadline: number,
  ) {
    this.#owner = owner;
    this.#encoding = encoding;
    this.storageKey = storageKey;
    this.limit = limit;
    this.cost = cost;
    this.started = started;
    this.deadline = deadline;
    this.promise = new Promise(capture);
    this.resolveWith = resolveNext;
    this.rejectWith = rejectNext;
  }

  /** The script's arguments after the key, as strings (for a retry through the client). */
  get scriptArgs(): string[] {
    return this.#encoding.args(this.limit, this.cost);
  }

  /** The whole command's arguments, as iovalkey reports them with an error reply. */
  get args(): string[] {
    return [this.#encoding.sha, "1", this.storageKey, ...this.scriptArgs];
  }

  toWritable(): Buffer {
    return this.#encoding.encode(this.storageKey, this.limit, this.cost);
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
