-- GET with a bearer token: `wrk ... -s get.lua URL -- ACCESS_TOKEN_FILE` (no argument:
-- no Authorization header). The request is static: wrk builds it once per thread.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function init(args)
   if args[1] then
      local file = assert(io.open(args[1]))
      wrk.headers["Authorization"] = "Bearer " .. file:read("*l")
      file:close()
   end
end
