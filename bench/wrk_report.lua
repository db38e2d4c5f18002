-- wrk script for the bench: counts 2xx and other statuses in every thread, then prints
-- one line "BENCH_RESULT {json}" with requests, duration, errors and latency percentiles
-- (microseconds), which bench/load.py parses.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  non2xx = 0
  statuses = {}
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    non2xx = non2xx + 1
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_bad, codes = 0, 0, {}
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("non2xx")
    for code, count in pairs(thread:get("statuses")) do
      codes[code] = (codes[code] or 0) + count
    end
  end
  local parts = {}
  for code, count in pairs(codes) do
    table.insert(parts, string.format('"%s": %d', code, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "ok": %d, ' ..
    '"non2xx": %d, "statuses": {%s}, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d}, "latency_us": {"mean": %.1f, "max": %d, ' ..
    '"p50": %d, "p90": %d, "p99": %d}}\n',
    summary.requests, summary.duration, summary.bytes, total_ok, total_bad,
    table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99)))
end
