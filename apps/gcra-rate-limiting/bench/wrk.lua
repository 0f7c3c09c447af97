-- wrk script of the gcra-rate-limiting benchmark.
--
-- Each request names a client in X-Forwarded-For, drawn at random from WRK_CLIENTS distinct
-- addresses (default 10 000; at most 1 040 384: 10.0.0.0/12 less the .0 and .255 hosts), so
-- that the agent runs its real decision path — parse the address, look the key up, decide, store
-- the new TAT — and, at the limit the benchmark configures, nearly every request is allowed and
-- reaches the end of the rule set. Each request also names one of 1000 tenants in X-Tenant, for
-- the rules file's tenant rule (the canonical configuration sends the header to the agent in
-- every scenario).
--
-- WRK_DELAY_MS (environment) paces the run: each connection waits that many milliseconds after
-- each answer before its next request (wrk's delay()). Unset: as fast as answered.
--
-- WRK_COUNT_UNCHECKED=1 (environment) counts the answers without a RateLimit-Limit header:
-- HAProxy sets it only from the agent's verdict, so these requests passed unchecked.
--
-- done() prints one JSON line with the counts and latency percentiles (µs).

local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "")
local clients = math.min(tonumber(os.getenv("WRK_CLIENTS") or "") or 10000, 16 * 256 * 254)

math.randomseed(os.time())

request = function()
  local n = math.random(0, clients - 1)
  local network = math.floor(n / 254)
  local address = string.format("10.%d.%d.%d", math.floor(network / 256), network % 256, n % 254 + 1)
  local tenant = string.format("tenant-%d", math.random(1, 1000))
  return wrk.format("GET", "/", { ["X-Forwarded-For"] = address, ["X-Tenant"] = tenant })
end

-- Each thread runs this script in a Lua state of its own; done() reads their counters.
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end

unchecked = 0
if os.getenv("WRK_COUNT_UNCHECKED") == "1" then
  response = function(status, headers, body)
    if headers["RateLimit-Limit"] == nil and headers["ratelimit-limit"] == nil then
      unchecked = unchecked + 1
    end
  end
end

if delay_ms then
  delay = function()
    return delay_ms
  end
end

done = function(summary, latency, requests)
  local errors = summary.errors
  local unchecked_total = 0
  for _, thread in ipairs(threads) do
    unchecked_total = unchecked_total + (thread:get("unchecked") or 0)
  end
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"timeouts":%d,"statusErrors":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"unchecked":%d}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.timeout, errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    unchecked_total
  ))
end
