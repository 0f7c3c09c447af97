import { Buffer } from "node:buffer";
import { decision, type GcraDecision } from "./gcra.ts";
import type { GcraLimit } from "./limit.ts";
import { bulk, bulkSize, bulks, luaScript, type RespSlab, writeBulk } from "./resp.ts";
import type { ScriptCodec } from "./script-command.ts";

/**
 * The GCRA decision as one Lua script, run atomically by Valkey/Redis (EVALSHA, with EVAL when the
 * server does not know it yet). Time comes from the server (`TIME`), so agents whose clocks
 * disagree still agree on every decision. Every number crossing the Lua boundary is an integer:
 * arguments are integer strings, the TAT is stored with `%d` (Lua's default number formatting
 * would switch to exponent notation and lose digits), and replies are differences of at most a
 * few tolerances, which Redis returns as integers exactly.
 *
 * - `KEYS[1]`: the key holding the TAT (µs since the epoch, server clock)
 * - `ARGV[1]`: emission interval T (µs); `ARGV[2]`: burst tolerance τ (µs)
 * - `ARGV[3]`: cost n; `ARGV[4]`: retention (ms, 0 = none)
 * - reply: `{allowed (1|0), resetAfter (µs), retryAfter (µs)}`
 *
 * An allowed request stores `tat'` with `PXAT ceil(tat' / 1000)`: the key expires at its TAT
 * rounded up to the millisecond — never earlier (an early expiry would hand out a free burst) —
 * or at `now + retention` if that is later. A denied request writes nothing and leaves the expiry alone.
 */
export const GCRA_SCRIPT = `local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local retention = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local after = tat + cost * interval
if after - now > tolerance then
  return {0, tat - now, after - tolerance - now}
end
local expireAt = math.ceil(after / 1000)
if retention > 0 then
  expireAt = math.max(expireAt, math.floor(now / 1000) + retention)
end
redis.call('SET', KEYS[1], string.format('%d', after), 'PXAT', string.format('%d', expireAt))
return {1, after - now, 0}
`;

/** {@link GCRA_SCRIPT} and its SHA1. */
export const SINGLE = luaScript(GCRA_SCRIPT);

/** SHA1 of {@link GCRA_SCRIPT}, as EVALSHA wants it. */
export const GCRA_SCRIPT_SHA = SINGLE.sha;

type ScriptReply = [number, number, number];

function isScriptReply(reply: unknown): reply is ScriptReply {
  return (
    Array.isArray(reply) &&
    reply.length === 3 &&
    typeof reply[0] === "number" &&
    typeof reply[1] === "number" &&
    typeof reply[2] === "number"
  );
}

/**
 * Calls of {@link GCRA_SCRIPT}: one storage key, decided with a limit and a cost. The RESP of
 * `EVALSHA sha 1` — the part of every call that never changes — is encoded once, and per limit
 * the arguments after the key (cost 1, the store's retention); a call copies them and its key
 * into the slab.
 */
export class SingleCodec implements ScriptCodec<string, GcraLimit, GcraDecision> {
  readonly script = SINGLE;
  readonly #retentionArg: string;
  readonly #slab: RespSlab;
  readonly #prefix: Buffer;
  readonly #suffixes = new WeakMap<GcraLimit, Buffer>();

  constructor(retentionArg: string, slab: RespSlab) {
    this.#retentionArg = retentionArg;
    this.#slab = slab;
    this.#prefix = Buffer.from(`*8\r\n$7\r\nevalsha\r\n${bulk(SINGLE.sha)}${bulk("1")}`, "latin1");
  }

  keyOf(key: string): string {
    return key;
  }

  keys(key: string): readonly string[] {
    return [key];
  }

  args(limit: GcraLimit, cost: number): readonly string[] {
    return [
      String(limit.emissionIntervalUs),
      String(limit.burstToleranceUs),
      String(cost),
      this.#retentionArg,
    ];
  }

  encode(key: string, limit: GcraLimit, cost: number): Buffer {
    const suffix = this.#suffix(limit, cost);
    const keyBytes = Buffer.byteLength(key);
    const slab = this.#slab.reserve(this.#prefix.length + bulkSize(keyBytes) + suffix.length);
    let at = this.#slab.offset;
    at += this.#prefix.copy(slab, at);
    at = writeBulk(slab, at, key, keyBytes);
    at += suffix.copy(slab, at);
    return this.#slab.commit(at);
  }

  parse(limit: GcraLimit, reply: unknown): GcraDecision | undefined {
    return isScriptReply(reply) ? decision(limit, reply[0] === 1, reply[1], reply[2], "store") : undefined;
  }

  /** The RESP of the arguments after the key (kept per limit for cost 1). */
  #suffix(limit: GcraLimit, cost: number): Buffer {
    if (cost !== 1) return bulks(this.args(limit, cost));
    let suffix = this.#suffixes.get(limit);
    if (suffix === undefined) {
      suffix = bulks(this.args(limit, 1));
      this.#suffixes.set(limit, suffix);
    }
    return suffix;
  }
}
