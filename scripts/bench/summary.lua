-- wrk: the stale availability summary of one event (GET /availability, view=summary,
-- consistency=stale), the read any node answers from memory. Args after `--`: EVENT_ID.
local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  path = "/availability?event_id=" .. (args[1] or "bench") .. "&view=summary&consistency=stale"
  ok, other = 0, 0
end

function request() return wrk.format("GET", path) end

function response(status)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency)
  local o, x = 0, 0
  for _, thread in ipairs(threads) do o = o + thread:get("ok"); x = x + thread:get("other") end
  io.write(string.format("RESULT ops=%.0f held=%d taken=0 other=%d p50=%.2f p99=%.2f p999=%.2f\n",
    o / (summary.duration / 1e6), o, x, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
