-- wrk script: distinct, valid Cellect status webhooks (bench/ingest.py, bench/stack.py).
--
-- Arguments (after --): sites, entries per delivery, base (epoch seconds: the first
-- 15-minute boundary at least 10 minutes ahead of the monitor's clock), run (an index
-- added in seconds to every start, so that no two runs send the same delivery).
--
-- Deliveries go round the sites: delivery k is for site k % sites + 1, and a site's
-- deliveries walk its entries with statuses 1 -> 2 -> 4 (InProgress, Implemented,
-- Deleted); one group of entries in 40 goes 1 -> 3 -> 4 (ImplementationFailed). Every
-- group is `entries` consecutive 15-minute slots within the next 48 h; after 188 slots
-- a site starts over one second later, so every delivery of a run has its own digest.
-- Each wrk thread takes every n-th delivery (n threads), so threads never repeat one.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   sites = tonumber(args[1])
   entries = tonumber(args[2])
   base = tonumber(args[3])
   run = tonumber(args[4])
   nthreads = #threads > 0 and #threads or 1
   tid = tid or 0
   headers = { ["Content-Type"] = "application/json" }
   groups = math.floor(188 / entries)
end

local function ts(t)
   return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

function request()
   local k = counter * nthreads + tid
   counter = counter + 1
   local site = k % sites + 1
   local step = math.floor(k / sites)
   local group = math.floor(step / 3)
   local phase = step % 3
   local status
   if phase == 0 then
      status = 1
   elseif phase == 2 then
      status = 4
   elseif (site * 7 + group) % 40 == 0 then
      status = 3
   else
      status = 2
   end
   local first = base + run + (group % groups) * entries * 900 + math.floor(group / groups)
   local parts = {}
   for i = 0, entries - 1 do
      local start = first + i * 900
      parts[#parts + 1] = string.format('{"start":"%s","end":"%s","status":%d}',
                                        ts(start), ts(start + 900), status)
   end
   local body = string.format('{"siteId":%d,"schedule":[%s]}', site, table.concat(parts, ","))
   return wrk.format("POST", nil, headers, body)
end
