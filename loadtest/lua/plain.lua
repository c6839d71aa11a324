-- GET <path> (first arg after `--`, default /health), the same request every time:
-- a calibration of what the framework and wrk manage on this machine with no database.

local dir = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(dir .. "common.lua")

function init(args)
  wrk.path = args[1] or "/health"
end
