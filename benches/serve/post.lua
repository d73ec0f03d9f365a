-- wrk script: POSTs the file BODY_FILE (JSON) on every request, and prints one machine-readable
-- line at the end: `RESULT {...}` with the counts and the latency percentiles (microseconds).
-- Plain wrk measures each request's latency from sending it to its answer on a connection that
-- sends the next one only then (closed loop): no coordinated-omission correction (that is wrk2).

local path = assert(os.getenv("BODY_FILE"), "set BODY_FILE")
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

-- DELAY_MS: each connection waits this long before each request (a paced load, below saturation;
-- the latency counts from sending, not the wait).
local pause = tonumber(os.getenv("DELAY_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
