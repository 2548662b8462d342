-- specweb.lua: a SPECweb99-like static request mix for wrk.
--
--   wrk -t2 -c50 -d5s -s tools/bench/specweb.lua http://127.0.0.1:8080 -- FILESET [SEED]
--
-- FILESET has one line per file: "dir<TAB>class<TAB>file<TAB>url-path",
-- where dir is the directory number (0 = most popular), class 0-3, and file
-- the position 0-8 of the file in its class by size (tools/sluice-fileset's
-- dirNNNNN/class{c}_{file+1}). tools/sluice-bench writes it from the docroot.
--
-- A request picks, independently:
--   a directory  Zipf(1) over the directories (directory 0 most popular);
--   a class      35% class 0, 50% class 1, 14% class 2, 1% class 3;
--   a file       Zipf(1) over the 9 files of the class, in SPECweb99's
--                rank order: file 4 (the 5th smallest) first (35.3%), then
--                3, 5, 2, 6, 1, 7, 8, and file 0 last (3.9%).
-- Each wrk thread seeds its generator from SEED and its thread number, so a
-- run is repeatable and every server sees the same request sequence. The
-- sequence is built once in init(); request() only hands out prebuilt
-- strings, so the client's per-request cost stays low and equal for all.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local SEQUENCE = 65536
local CLASS_MIX = { [0] = 0.35, 0.50, 0.14, 0.01 }
-- popularity rank (1 = most popular) of file k, k = 0..8
local FILE_RANK = { [0] = 9, 6, 4, 2, 1, 3, 5, 7, 8 }

local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("thread_no", threads)
end

-- cdf: increasing cumulative weights; returns an index 1..#cdf
local function pick(cdf)
   local u = math.random() * cdf[#cdf]
   local lo, hi = 1, #cdf
   while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
   end
   return lo
end

local reqs, n, i = {}, 0, 0

function init(args)
   -- files[d][c] = { {rank, path}, ... }
   local files, dirs = {}, {}
   local f = assert(io.open(args[1], "r"))
   for line in f:lines() do
      local d, c, k, path = line:match("^(%d+)\t(%d+)\t(%d+)\t(%S+)$")
      if d then
         d, c, k = tonumber(d), tonumber(c), tonumber(k)
         if not files[d] then files[d] = {}; dirs[#dirs + 1] = d end
         files[d][c] = files[d][c] or {}
         table.insert(files[d][c], { FILE_RANK[k] or (k + 1), path })
      end
   end
   f:close()
   assert(#dirs > 0, "specweb.lua: no files in " .. args[1])
   table.sort(dirs)

   local dir_cdf, acc = {}, 0
   for r = 1, #dirs do
      acc = acc + 1 / r
      dir_cdf[r] = acc
   end
   -- per directory and class: paths in rank order and their Zipf cdf
   local class_files = {}
   for _, d in ipairs(dirs) do
      class_files[d] = {}
      for c, list in pairs(files[d]) do
         table.sort(list, function(a, b) return a[1] < b[1] end)
         local paths, cdf, s = {}, {}, 0
         for j, e in ipairs(list) do
            s = s + 1 / e[1]
            paths[j], cdf[j] = e[2], s
         end
         class_files[d][c] = { paths = paths, cdf = cdf }
      end
   end
   local class_cdf, classes, s = {}, {}, 0
   for c = 0, 3 do
      s = s + CLASS_MIX[c]
      class_cdf[c + 1], classes[c + 1] = s, c
   end

   math.randomseed((tonumber(args[2]) or 1) * 1000 + (thread_no or 0))
   for k = 1, SEQUENCE do
      local d = dirs[pick(dir_cdf)]
      local cf = class_files[d][classes[pick(class_cdf)]]
      if not cf then -- a class missing from this directory: any class it has
         for _, v in pairs(class_files[d]) do cf = v; break end
      end
      reqs[k] = wrk.format(nil, cf.paths[pick(cf.cdf)])
   end
   n = SEQUENCE
end

function request()
   i = i % n + 1
   return reqs[i]
end
