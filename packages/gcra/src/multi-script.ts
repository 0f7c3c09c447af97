import { Buffer } from "node:buffer";
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
 * - `ARGV[1]`: retention (ms, 0 = none); then for request i, from `ARGV[2 + 3(i−1)]`: the
 *   increment n·T (cost times the emission interval, µs), burst tolerance τ (µs), and `1` when
 *   the request is enforcing
 * - reply: `{allowed (1|0), then per request: allowed (1|0), resetAfter (µs), retryAfter (µs)}`
 *
 * Requests are judged in order; a key named twice is judged the second time against the TAT its
 * latest passing request would leave. Only when every enforcing request passes are the TATs of
 * the passing ones stored (each key once, with its last TAT, and the expiry of `GCRA_SCRIPT`);
 * otherwise nothing is written.
 *
 * Its cost on the server is per key what the single-key script costs: Valkey's work is the
 * `GET` and the `SET` of each key and turning each argument into a number. So the script reads
 * each key where it judges it, keeps the TATs in one array indexed like `KEYS` (a key named
 * twice, rare, is found by a scan of the earlier ones) rather than in tables by key, and takes
 * three arguments per request, not four.
 */
export const GCRA_MULTI_SCRIPT = `local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local n = #KEYS
local reply = {1}
local afters = {}
for i = 1, n do
  -- Request i's arguments start at ARGV[at], its decision at reply[at].
  local at = i * 3 - 1
  local increment = tonumber(ARGV[at])
  local tolerance = tonumber(ARGV[at + 1])
  local key = KEYS[i]
  local tat
  for j = i - 1, 1, -1 do
    if afters[j] and KEYS[j] == key then
      tat = afters[j]
      break
    end
  end
  if tat == nil then
    tat = tonumber(redis.call('GET', key))
  end
  if tat == nil or tat < now then
    tat = now
  end
  local after = tat + increment
  if after - now > tolerance then
    if ARGV[at + 2] == '1' then
      reply[1] = 0
    end
    afters[i] = false
    reply[at] = 0
    reply[at + 1] = tat - now
    reply[at + 2] = after - tolerance - now
  else
    afters[i] = after
    reply[at] = 1
    reply[at + 1] = after - now
    reply[at + 2] = 0
  end
end
if reply[1] == 1 then
  local retention = tonumber(ARGV[1])
  local kept = math.floor(now / 1000) + retention
  for i = 1, n do
    local after = afters[i]
    if after then
      local last = true
      for j = i + 1, n do
        if afters[j] and KEYS[j] == KEYS[i] then
          last = false
          break
        end
      end
      if last then
        local expireAt = math.ceil(after / 1000)
        if retention > 0 and kept > expireAt then
          expireAt = kept
        end
        redis.call('SET', KEYS[i], string.format('%d', after), 'PXAT', string.format('%d', expireAt))
      end
    end
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
  return [String(cost * limit.emissionIntervalUs), String(limit.burstToleranceUs), enforce ? "1" : "0"];
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
 * per limit the three arguments of a request (cost 1, enforcing or not); a call copies them and
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
      const head = `*${4 + 4 * count}\r\n$7\r\nevalsha\r\n${bulk(MULTI.sha)}${bulk(String(count))}`;
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
