-- Shared by listing.lua and booking.lua (loaded with dofile): data files, per-thread
-- random seeds, and a done() that prints one machine-readable line for bench.py.
--
-- Per-thread globals named in COUNTERS are summed over all threads in done();
-- the `samples` table (status -> first body seen) is merged too.

local M = {}

function M.read_lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then out[#out + 1] = line end
  end
  assert(#out > 0, "no lines in " .. path)
  return out
end

-- setup() runs in the main Lua state once per thread: number the threads and keep
-- their handles so done() can read their counters.
local threads = {}
function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function M.seed_random(base)
  math.randomseed((base or 12345) + 7919 * (thread_id or 0))
  for _ = 1, 10 do math.random() end
end

local function json_escape(s)
  return (tostring(s):gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end))
end

COUNTERS = COUNTERS or {}

function done(summary, latency, requests)
  local totals, samples = {}, {}
  for _, name in ipairs(COUNTERS) do totals[name] = 0 end
  local other = {}
  for _, t in ipairs(threads) do
    for _, name in ipairs(COUNTERS) do
      totals[name] = totals[name] + (t:get(name) or 0)
    end
    local o = t:get("other") or {}
    for status, n in pairs(o) do other[status] = (other[status] or 0) + n end
    local s = t:get("samples") or {}
    for status, body in pairs(s) do samples[status] = samples[status] or body end
  end
  local e = summary.errors
  local parts = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"bytes":%d', summary.bytes),
    string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
      e.connect, e.read, e.write, e.status, e.timeout),
    string.format('"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p95":%d,"p99":%d,"p99_9":%d}',
      latency.min, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(95), latency:percentile(99), latency:percentile(99.9)),
  }
  local c = {}
  for _, name in ipairs(COUNTERS) do c[#c + 1] = string.format('"%s":%d', name, totals[name]) end
  parts[#parts + 1] = '"counters":{' .. table.concat(c, ",") .. "}"
  local o = {}
  for status, n in pairs(other) do o[#o + 1] = string.format('"%s":%d', status, n) end
  parts[#parts + 1] = '"other_status":{' .. table.concat(o, ",") .. "}"
  local s = {}
  for status, body in pairs(samples) do
    s[#s + 1] = string.format('"%s":"%s"', status, json_escape(body:sub(1, 300)))
  end
  parts[#parts + 1] = '"samples":{' .. table.concat(s, ",") .. "}"
  io.write("BENCH_JSON {" .. table.concat(parts, ",") .. "}\n")
end

return M
