-- GET /seats?available_only=true&branch=<random branch> with a random student's token.
-- Args (after `--`): branches_file tokens_file [random_seed]
-- No response() function: wrk then skips body handling; non-2xx shows up in errors.status.

local dir = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local requests = {}

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function init(args)
  common.seed_random(tonumber(args[3]))
  local branches = common.read_lines(args[1])
  local tokens = common.read_lines(args[2])
  -- Pre-build a pool of complete requests: (branch x a sample of tokens).
  for i = 1, math.min(#tokens, 200) do
    local token = tokens[math.random(#tokens)]
    local branch = branches[(i - 1) % #branches + 1]
    requests[#requests + 1] = wrk.format("GET",
      "/seats?available_only=true&branch=" .. urlencode(branch),
      { ["Authorization"] = "Bearer " .. token })
  end
end

function request()
  return requests[math.random(#requests)]
end
