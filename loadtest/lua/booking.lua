-- POST /reservations {seat_id, start_time, end_time}: random student token, random seat,
-- random slot: day 1..DAYS after today (UTC), start on a whole or half hour in
-- [FIRST_HOUR, LAST_HOUR), 60/90/120 minutes long. Counts 201 / 409 seat_conflict /
-- 409 user_overlap / anything else (by status, first body kept as a sample).
-- Args (after `--`): tokens_file seats_file today_epoch [days first_hour last_hour seed]

local dir = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
COUNTERS = { "created", "seat_conflict", "user_overlap", "conflict_other", "other_total" }
local common = dofile(dir .. "common.lua")

created, seat_conflict, user_overlap, conflict_other, other_total = 0, 0, 0, 0, 0
other, samples = {}, {}

local auth, seats, slots = {}, {}, {}

function init(args)
  local tokens = common.read_lines(args[1])
  for i, t in ipairs(tokens) do auth[i] = { ["Authorization"] = "Bearer " .. t,
                                             ["Content-Type"] = "application/json" } end
  for i, s in ipairs(common.read_lines(args[2])) do seats[i] = tonumber(s) end
  local today = tonumber(args[3])
  local days = tonumber(args[4] or 13)
  local first_hour, last_hour = tonumber(args[5] or 8), tonumber(args[6] or 22)
  common.seed_random(tonumber(args[7]))
  -- Every (start, end) pair up front: ISO 8601 with an explicit +00:00 offset.
  local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%S+00:00", t) end
  for d = 1, days do
    for half = first_hour * 2, last_hour * 2 - 1 do
      local start = today + d * 86400 + half * 1800
      for _, minutes in ipairs({ 60, 90, 120 }) do
        slots[#slots + 1] = { iso(start), iso(start + minutes * 60) }
      end
    end
  end
end

function request()
  local slot = slots[math.random(#slots)]
  local body = string.format('{"seat_id":%d,"start_time":"%s","end_time":"%s"}',
    seats[math.random(#seats)], slot[1], slot[2])
  return wrk.format("POST", "/reservations", auth[math.random(#auth)], body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  elseif status == 409 and body:find("seat_conflict", 1, true) then
    seat_conflict = seat_conflict + 1
  elseif status == 409 and body:find("user_overlap", 1, true) then
    user_overlap = user_overlap + 1
  else
    if status == 409 then conflict_other = conflict_other + 1 end
    other_total = other_total + 1
    other[status] = (other[status] or 0) + 1
    if not samples[status] then samples[status] = body end
  end
end
