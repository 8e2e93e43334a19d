-- POST /api/token/refresh, each request spending a refresh token never sent before:
-- `wrk ... -s refresh.lua URL -- TOKENS_PREFIX`, where TOKENS_PREFIX.<n> holds thread
-- n's share, one token a line. A reused token would revoke its session (401), so a
-- thread that runs out sends an empty token (422) and counts it in `exhausted`.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local requests = {}
local next_request = 1
local spent
exhausted = 0  -- global: report.lua reads it from each thread

function init(args)
   local headers = { ["Content-Type"] = "application/json" }
   for token in io.lines(args[1] .. "." .. thread_index) do
      requests[#requests + 1] = wrk.format(
         "POST", nil, headers, '{"refresh_token":"' .. token .. '"}')
   end
   spent = wrk.format("POST", nil, headers, '{"refresh_token":""}')
end

function request()
   local built = requests[next_request]
   if built == nil then
      exhausted = exhausted + 1
      return spent
   end
   requests[next_request] = nil
   next_request = next_request + 1
   return built
end
