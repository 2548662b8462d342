-- report.lua: wrk done() hook that prints one machine-readable result line.
-- Used alone for single-URL workloads (no per-request Lua, so the client
-- pays nothing extra) and loaded by the other scripts with dofile().
--
--   wrk -t2 -c50 -d5s -s tools/bench/report.lua http://127.0.0.1:8080/x
--
-- Prints: SLUICE-BENCH {"requests":..,"duration_us":..,...}
-- "status" counts responses that were not 2xx/3xx (wrk's "Non-2xx").

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'SLUICE-BENCH {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
      '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(99),
      latency.max))
end
