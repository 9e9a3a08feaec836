-- wrk script: POST one chat completion per request with a fixed ~1,000-token system prompt,
-- a per-connection session id (none when SESSION=0), and max_tokens from the environment
-- (default 16).
local max_tokens = os.getenv("MAX_TOKENS") or "16"
local stream = os.getenv("STREAM") == "1"
local session = os.getenv("SESSION") ~= "0"
local system = string.rep("You are a careful consultant who writes plans. ", 85)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  if session then wrk.headers["x-session-id"] = "wrk-" .. tostring(id) end
end
request = function()
  local body = '{"model":"meta-llama/Llama-3.2-3B-Instruct","max_tokens":' .. max_tokens ..
    (stream and ',"stream":true' or '') ..
    ',"messages":[{"role":"system","content":"' .. system .. '"},{"role":"user","content":"Plan it."}]}'
  return wrk.format(nil, "/v1/chat/completions", nil, body)
end
