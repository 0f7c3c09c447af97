import { decision, type GcraDecision } from "./gcra.ts";
import type { GcraMultiDecision, GcraRequest } from "./multi.ts";
import { luaScript } from "./script-call.ts";

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

/** The script's `ARGV` for `requests`. */
export function multiArgs(requests: readonly GcraRequest[], retentionArg: string): string[] {
  const args = [retentionArg];
  for (const { limit, cost = 1, enforce = true } of requests) {
    args.push(
      String(limit.emissionIntervalUs),
      String(limit.burstToleranceUs),
      String(cost),
      enforce ? "1" : "0",
    );
  }
  return args;
}

/** The decision the script's reply means, or `undefined` for a reply of another shape. */
export function parseMultiReply(
  requests: readonly GcraRequest[],
  reply: unknown,
): GcraMultiDecision | undefined {
  if (!Array.isArray(reply) || reply.length !== 1 + 3 * requests.length) return undefined;
  if (!reply.every((n) => typeof n === "number")) return undefined;
  const numbers = reply as number[];
  const decisions: GcraDecision[] = requests.map(({ limit }, i) =>
    decision(
      limit,
      numbers[1 + 3 * i] === 1,
      numbers[2 + 3 * i] as number,
      numbers[3 + 3 * i] as number,
      "store",
    ),
  );
  return { allowed: numbers[0] === 1, decisions, source: "store" };
}
