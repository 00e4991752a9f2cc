-- wrk script of `make bench`: POSTs the request mix written by loadtests/mix.py, in order, cycling.
--   wrk -t1 -c16 -d20s -s loadtests/mix.lua http://127.0.0.1:PORT -- requests.tsv
-- Each line of the file is "path<TAB>json body". NBO_BENCH_KEY, when set, is sent as a bearer key.
-- done() prints one JSON line (prefixed "WRK_JSON ") that the harness reads.

local requests = {}
local counter = 0

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  local key = os.getenv("NBO_BENCH_KEY")
  if key and key ~= "" then headers["Authorization"] = "Bearer " .. key end
  for line in io.lines(args[1]) do
    local path, body = line:match("^([^\t]+)\t(.*)$")
    if path then requests[#requests + 1] = wrk.format("POST", path, headers, body) end
  end
end

function request()
  counter = counter + 1
  return requests[(counter - 1) % #requests + 1]
end

function done(summary, latency, requests_seen)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "p99.9_ms": %.3f, ' ..
    '"max_ms": %.3f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
