-- wrk script for `make bench` (benchmarks/load.py): POST a JSON body, count non-2xx
-- answers and 429s (refusals by a rate limit) exactly, and print one machine-readable
-- line at the end.
-- The body and the Authorization header come from the environment, never the command
-- line, so a key is not visible in the process list.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"prompt":"hello"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "reminix-bench/wrk"
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  limited = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if status == 429 then
      limited = limited + 1
    end
  end
end

function done(summary, latency, requests)
  local bad, refused = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    refused = refused + (thread:get("limited") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "limited": %d, '
      .. '"socket_errors": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, bad, refused, e.connect + e.read + e.write + e.timeout,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    math.floor(latency.max)))
end
