-- wrk: one hold of one random seat per request (POST /booking/hold), each with its own
-- Idempotency-Key. Seats are S-<row>-<n>, 1,000 a row, as stale-reads.py creates them.
-- Args after `--`: SEATS EVENT_ID.
local counter = 0
local threads = {}
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  seats = tonumber(args[1]) or 1000000
  event = args[2] or "bench"
  math.randomseed(os.time() + id * 7919)
  run = string.format("%x-%d", os.time(), id)
  seq, ok, taken, other = 0, 0, 0, 0
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  seq = seq + 1
  local seat = math.random(0, seats - 1)
  headers["Idempotency-Key"] = run .. "-" .. seq
  local body = string.format(
    '{"event_id":"%s","customer_id":"c%d-%d","seats":["S-%d-%d"],"ttl_seconds":600}',
    event, id, seq, math.floor(seat / 1000), seat % 1000 + 1)
  return wrk.format("POST", "/booking/hold", headers, body)
end

function response(status)
  if status == 201 then ok = ok + 1 elseif status == 409 then taken = taken + 1 else other = other + 1 end
end

function done(summary, latency)
  local o, t, x = 0, 0, 0
  for _, thread in ipairs(threads) do
    o = o + thread:get("ok"); t = t + thread:get("taken"); x = x + thread:get("other")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT ops=%.0f held=%d taken=%d other=%d p50=%.2f p99=%.2f p999=%.2f\n",
    (o + t) / seconds, o, t, x, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000))
end
