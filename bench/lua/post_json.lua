-- wrk script: POST one JSON body, a unique Idempotency-Key per request, count non-2xx exactly.
--
-- Configured by environment variables (read once per thread):
--   BENCH_PATH         request path, e.g. /api/v1/payment-orders
--   BENCH_BODY         the JSON body
--   BENCH_AUTH         optional Authorization header value, e.g. "Bearer mcp_demo_..."
--   BENCH_IDEM_PREFIX  prefix of the Idempotency-Key (A-Z a-z 0-9 -); unique per run
-- The bare baseline gets the same headers (it ignores them), so both sides cost wrk the same.
-- wrk itself only counts status > 399 as errors; done() prints "BENCH non2xx=N" counting every
-- status outside 200-299, and the first such response.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

function init(args)
   path = os.getenv("BENCH_PATH") or "/"
   body = os.getenv("BENCH_BODY") or "{}"
   prefix = os.getenv("BENCH_IDEM_PREFIX") or "wrk"
   headers = { ["Content-Type"] = "application/json" }
   local auth = os.getenv("BENCH_AUTH")
   if auth and auth ~= "" then
      headers["Authorization"] = auth
   end
   n = 0
   non2xx = 0
   first_error = ""
end

function request()
   n = n + 1
   headers["Idempotency-Key"] = prefix .. "-" .. tid .. "-" .. n
   return wrk.format("POST", path, headers, body)
end

function response(status, hdrs, resp_body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_error == "" then
         first_error = tostring(status) .. " " .. string.sub(resp_body or "", 1, 300)
      end
   end
end

function done(summary, latency, requests)
   local total = 0
   local err = ""
   for _, t in ipairs(threads) do
      total = total + (t:get("non2xx") or 0)
      local e = t:get("first_error") or ""
      if err == "" and e ~= "" then
         err = e
      end
   end
   io.write(string.format("BENCH non2xx=%d\n", total))
   if err ~= "" then
      io.write("BENCH first_error=" .. string.gsub(err, "[\r\n]", " ") .. "\n")
   end
end
