-- wrk script for the tuner: each request takes the next path of a URL mix (one path per
-- line in the file given after "--"), and bench/wrk_report.lua counts statuses and prints
-- the BENCH_RESULT line that bench/load.py parses.

local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "../wrk_report.lua")

local report_init = init
local paths = {}
local next_path = 1

function init(args)
  report_init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      table.insert(paths, line)
    end
  end
end

function request()
  local path = paths[next_path]
  next_path = next_path % #paths + 1
  return wrk.format("GET", path)
end
