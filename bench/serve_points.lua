-- wrk script for bench/serve.py: every request asks /snare.wav for a random whole-CC point,
-- and the summary comes out as one JSON line.
math.randomseed(tonumber(os.getenv("SEED") or "1"))

request = function()
  return wrk.format("GET", string.format("/snare.wav?x=%d&y=%d", math.random(0, 127), math.random(0, 127)))
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %.3f, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
