-- wrk script: POST /v1/sessions/verify with a session token (or an access
-- token) taken from the environment, so no secret is written to a file.
--   LATCH_API_KEY=… TOKEN=lts_… wrk -t2 -c64 -d15s -s bench/wrk/verify.lua http://127.0.0.1:8080
local tok = os.getenv("TOKEN") or ""
local field = "session_token"
if tok:sub(1, 3) == "eyJ" then field = "access_token" end
wrk.method = "POST"
wrk.path = "/v1/sessions/verify"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("LATCH_API_KEY") or "")
wrk.body = '{"' .. field .. '":"' .. tok .. '"}'

-- wrk reports "Non-2xx or 3xx responses" if any verification failed.
