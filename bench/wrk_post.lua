-- wrk script: POST a fixed JSON body and print one machine-readable summary line.
-- Usage: wrk -s bench/wrk_post.lua URL -- BODY_FILE [MAX_REQUESTS]
-- MAX_REQUESTS (optional) stops the run after that many responses; it is for
-- the RSS soak, where a request count matters and timing does not.

local max_requests = nil
local seen = 0

function init(args)
   local f = assert(io.open(args[1], "rb"))
   wrk.method = "POST"
   wrk.body = f:read("*a")
   f:close()
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer bench-key"
   if args[2] then
      max_requests = tonumber(args[2])
      -- Defined only when needed: a response() hook makes wrk hand every
      -- response body to Lua, which is wasted work in the timed runs.
      response = function(status, headers, body)
         seen = seen + 1
         if seen == max_requests then
            -- wrk's main thread sleeps for the whole -d duration whatever the
            -- threads do, so tell the harness, which ends wrk with SIGINT
            -- (wrk then prints its summary as usual).
            wrk.thread:stop()
            io.write("WRK_LIMIT_REACHED\n")
            io.flush()
         end
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
