-- files.lua: requests drawn uniformly from a list of URL paths.
--
--   wrk -t2 -c50 -d5s -s tools/bench/files.lua http://127.0.0.1:8080 -- PATHS [SEED]
--
-- PATHS holds one URL path per line ("/bench/100k/f007.bin"). Each wrk
-- thread draws its own sequence from SEED and its thread number, so a run
-- is repeatable and every server sees the same requests. The sequence is
-- built once in init(); request() only hands out prebuilt strings, keeping
-- the client's per-request cost low and equal for every server.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local SEQUENCE = 65536

local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("thread_no", threads)
end

local reqs, n, i = {}, 0, 0

function init(args)
   local paths = {}
   local f = assert(io.open(args[1], "r"))
   for line in f:lines() do
      if line ~= "" then paths[#paths + 1] = line end
   end
   f:close()
   assert(#paths > 0, "files.lua: no paths in " .. args[1])
   math.randomseed((tonumber(args[2]) or 1) * 1000 + (thread_no or 0))
   for k = 1, SEQUENCE do
      reqs[k] = wrk.format(nil, paths[math.random(#paths)])
   end
   n = SEQUENCE
end

function request()
   i = i % n + 1
   return reqs[i]
end
