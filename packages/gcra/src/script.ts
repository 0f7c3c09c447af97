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
