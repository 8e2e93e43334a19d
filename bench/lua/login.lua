-- POST /api/token/ as the seeded users in turn (so no throttle key sees more than
-- one attempt at a time): `wrk ... -s login.lua URL -- EMAILS_FILE PASSWORD`.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local requests = {}
local next_request = 1

function init(args)
   local headers = { ["Content-Type"] = "application/json" }
   for email in io.lines(args[1]) do
      requests[#requests + 1] = wrk.format("POST", nil, headers, string.format(
         '{"email":"%s","password":"%s"}', email, args[2]))
   end
   -- Threads start at different users.
   next_request = (thread_index * 97) % #requests + 1
end

function request()
   local built = requests[next_request]
   next_request = next_request % #requests + 1
   return built
end
