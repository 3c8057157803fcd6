-- wrk script: POST a fixed JSON body and print one machine-readable summary line.
-- Usage: wrk -s bench/wrk_post.lua URL -- BODY_FILE [max=N] [headers=FILE]
-- max=N stops the run after N responses; it is for the RSS soak, where a request
-- count matters and timing does not. headers=FILE sends the "Name: value" lines of
-- FILE as the request's headers (the large case sends Claude Code's) instead of
-- the default Content-Type and Authorization.

local max_requests = nil
local seen = 0

function init(args)
   local f = assert(io.open(args[1], "rb"))
   wrk.method = "POST"
   wrk.body = f:read("*a")
   f:close()
   local headers_file = nil
   for i = 2, #args do
      local key, value = args[i]:match("^(%w+)=(.+)$")
      if key == "max" then
         max_requests = tonumber(value)
      elseif key == "headers" then
         headers_file = value
      else
         error("wrk_post.lua: unknown argument " .. args[i])
      end
   end
   if headers_file then
      for line in io.lines(headers_file) do
         local name, value = line:match("^([^:]+):%s*(.*)$")
         if name then
            wrk.headers[name] = value
         end
      end
   else
      wrk.headers["Content-Type"] = "application/json"
      wrk.headers["Authorization"] = "Bearer bench-key"
   end
   if max_requests then
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
