import { decision, type GcraDecision } from "./gcra.ts";
import type { GcraLimit } from "./limit.ts";
import type { GcraMultiDecision, GcraRequest } from "./multi.ts";
import { bulk, bulkSize, bulks, luaScript, type RespSlab, writeBulk } from "./resp.ts";
import type { ScriptCodec } from "./script-command.ts";

/**
 * The all-or-nothing GCRA decision over several keys as one Lua script (see `decideAll`, its
 * twin in TypeScript, and `GCRA_SCRIPT` for the number conventions). Valkey runs a script
 * atomically, so on one node (standalone, sentinel, replication, or one cluster slot) the whole
 * request is decided and stored at one instant.
 *
 * - `KEYS[i]`: the key of request i
 * - `ARGV[1]`: retention (ms, 0 = none); then for request i, from `ARGV[2 + 4(i−1)]`: emission
 *   interval T (µs), burst tolerance τ (µs), cost n, and `1` when the request is enforcing
 * - reply: `{allowed (1|0), then per request: allowed (1|0), resetAfter (µs), retryAfter (µs)}`
 *
 * Requests are judged in order; a key named twice is judged the second time against the TAT its
 * first, passing, request would leave. Only when every enforcing request passes are the TATs of
 * the passing ones stored (with the expiry of `GCRA_SCRIPT`); otherwise nothing is written.
 */
export const GCRA_MULTI_SCRIPT = `local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local retention = tonumber(ARGV[1])
local pending = {}
local order = {}
local reply = {1}
for i = 1, #KEYS do
  local at = 2 + (i - 1) * 4
  local interval = tonumber(ARGV[at])
  local tolerance = tonumber(ARGV[at + 1])
  local cost = tonumber(ARGV[at + 2])
  local key = KEYS[i]
  local tat = pending[key]
  if tat == nil then
    tat = tonumber(redis.call('GET', key))
  end
  if tat == nil or tat < now then
    tat = now
  end
  local after = tat + cost * interval
  if after - now > tolerance then
    if ARGV[at + 3] == '1' then
      reply[1] = 0
    end
    reply[#reply + 1] = 0
    reply[#reply + 1] = tat - now
    reply[#reply + 1] = after - tolerance - now
  else
    if pending[key] == nil then
      order[#order + 1] = key
    end
    pending[key] = after
    reply[#reply + 1] = 1
    reply[#reply + 1] = after - now
    reply[#reply + 1] = 0
  end
end
if reply[1] == 1 then
  for _, key in ipairs(order) do
    local after = pending[key]
    local expireAt = math.ceil(after / 1000)
    if retention > 0 then
      expireAt = math.max(expireAt, math.floor(now / 1000) + retention)
    end
    redis.call('SET', key, string.format('%d', after), 'PXAT', string.format('%d', expireAt))
  end
end
return reply
`;

/** {@link GCRA_MULTI_SCRIPT} and its SHA1. */
export const MULTI = luaScript(GCRA_MULTI_SCRIPT);

/** SHA1 of {@link GCRA_MULTI_SCRIPT}. */
export const GCRA_MULTI_SCRIPT_SHA = MULTI.sha;

/** The script's `ARGV` of one request. */
function requestArgs(limit: GcraLimit, cost: number, enforce: boolean): string[] {
  return [
    String(limit.emissionIntervalUs),
    String(limit.burstToleranceUs),
    String(cost),
    enforce ? "1" : "0",
  ];
}

/** The script's `ARGV` for `requests`. */
export function multiArgs(requests: readonly GcraRequest[], retentionArg: string): string[] {
  const args = [retentionArg];
  for (const { limit, cost = 1, enforce = true } of requests) args.push(...requestArgs(limit, cost, enforce));
  return args;
}

/** The decision the script's reply means, or `undefined` for a reply of another shape. */
export function parseMultiReply(
  requests: readonly GcraRequest[],
  reply: unknown,
): GcraMultiDecision | undefined {
  if (!Array.isArray(reply) || reply.length !== 1 + 3 * requests.length) return undefined;
  for (let i = 0; i < reply.length; i++) if (typeof reply[i] !== "number") return undefined;
  const numbers = reply as number[];
  const decisions: GcraDecision[] = new Array(requests.length);
  for (let i = 0; i < requests.length; i++) {
    decisions[i] = decision(
      (requests[i] as GcraRequest).limit,
      numbers[1 + 3 * i] === 1,
      numbers[2 + 3 * i] as number,
      numbers[3 + 3 * i] as number,
      "store",
    );
  }
  return { allowed: numbers[0] === 1, decisions, source: "store" };
}

/**
 * Calls of {@link GCRA_MULTI_SCRIPT}: the storage keys of one slot, decided with their requests.
 * The RESP of `EVALSHA sha numkeys` is encoded once per number of keys, the retention once, and
 * per limit the four arguments of a request (cost 1, enforcing or not); a call copies them and
 * its keys into the slab.
 */
export class MultiCodec implements ScriptCodec<readonly string[], readonly GcraRequest[], GcraMultiDecision> {
  readonly script = MULTI;
  readonly #retentionArg: string;
  readonly #retention: Buffer;
  readonly #slab: RespSlab;
  /** By number of keys. */
  readonly #prefixes: Buffer[] = [];
  /** Per limit, a request's arguments with cost 1: enforcing, then not. */
  readonly #suffixes = new WeakMap<GcraLimit, readonly [Buffer, Buffer]>();
  /** {@link encode}'s scratch: per key of the call, its byte length and its request's arguments. */
  readonly #keyBytes: number[] = [];
  readonly #requestSuffixes: Buffer[] = [];

  constructor(retentionArg: string, slab: RespSlab) {
    this.#retentionArg = retentionArg;
    this.#retention = Buffer.from(bulk(retentionArg), "latin1");
    this.#slab = slab;
  }

  keyOf(keys: readonly string[]): string {
    return keys[0] as string;
  }

  keys(keys: readonly string[]): readonly string[] {
    return keys;
  }

  args(requests: readonly GcraRequest[]): readonly string[] {
    return multiArgs(requests, this.#retentionArg);
  }

  encode(keys: readonly string[], requests: readonly GcraRequest[]): Buffer {
    const prefix = this.#prefix(keys.length);
    // Each key's byte length and each request's arguments, found once for the size and the copy.
    const keyBytes = this.#keyBytes;
    const suffixes = this.#requestSuffixes;
    let size = prefix.length + this.#retention.length;
    for (let i = 0; i < keys.length; i++) {
      const bytes = Buffer.byteLength(keys[i] as string);
      const suffix = this.#suffix(requests[i] as GcraRequest);
      keyBytes[i] = bytes;
      suffixes[i] = suffix;
      size += bulkSize(bytes) + suffix.length;
    }
    const slab = this.#slab.reserve(size);
    let at = this.#slab.offset;
    at += prefix.copy(slab, at);
    for (let i = 0; i < keys.length; i++) at = writeBulk(slab, at, keys[i] as string, keyBytes[i] as number);
    at += this.#retention.copy(slab, at);
    for (let i = 0; i < keys.length; i++) at += (suffixes[i] as Buffer).copy(slab, at);
    return this.#slab.commit(at);
  }

  parse(requests: readonly GcraRequest[], reply: unknown): GcraMultiDecision | undefined {
    return parseMultiReply(requests, reply);
  }

  /** `*<arguments> EVALSHA sha <count>` for `count` keys. */
  #prefix(count: number): Buffer {
    let prefix = this.#prefixes[count];
    if (prefix === undefined) {
      const head = `*${4 + 5 * count}\r\n$7\r\nevalsha\r\n${bulk(MULTI.sha)}${bulk(String(count))}`;
      prefix = Buffer.from(head, "latin1");
      this.#prefixes[count] = prefix;
    }
    return prefix;
  }

  #suffix({ limit, cost = 1, enforce = true }: GcraRequest): Buffer {
    if (cost !== 1) return bulks(requestArgs(limit, cost, enforce));
    let pair = this.#suffixes.get(limit);
    if (pair === undefined) {
      pair = [bulks(requestArgs(limit, 1, true)), bulks(requestArgs(limit, 1, false))];
      this.#suffixes.set(limit, pair);
    }
    return enforce ? pair[0] : pair[1];
  }
}
