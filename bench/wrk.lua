-- The requests bench/run.py sends with wrk, and the one summary line it reads back.
--   wrk [options] http://127.0.0.1:PORT -s bench/wrk.lua -- [paths=P1|P2|...] [ids=N] [body=JSON]
-- paths: each request takes one of these paths at random; "{id}" in a path becomes a random id in 1..ids.
-- body:  every request is a POST of this JSON body.
-- Headers (the bearer token) come from wrk's own -H option.

local paths = {}
local ids = 1

function init(args)
  for _, arg in ipairs(args) do
    local key, value = arg:match("^(%w+)=(.*)$")
    if key == "paths" then
      for path in value:gmatch("[^|]+") do
        paths[#paths + 1] = path
      end
    elseif key == "ids" then
      ids = tonumber(value)
    elseif key == "body" then
      wrk.method = "POST"
      wrk.body = value
      wrk.headers["Content-Type"] = "application/json"
    end
  end
  if #paths > 0 then
    -- Defined only when needed: without request(), wrk sends one prepared request over and over.
    math.randomseed(os.time())
    request = random_request
  end
end

function random_request()
  local path = paths[math.random(#paths)]:gsub("{id}", function()
    return tostring(math.random(ids))
  end)
  return wrk.format(nil, path)
end

-- Latencies in microseconds; "errors" adds up failed connections, reads, writes, timeouts and
-- answers with a status of 400 or more.
function done(summary, latency, _requests)
  local errors = summary.errors
  io.write(
    string.format(
      'BENCH {"requests": %d, "seconds": %.6f, "p50_us": %d, "p99_us": %d, "max_us": %d, '
        .. '"errors": %d, "non_2xx_3xx": %d}\n',
      summary.requests,
      summary.duration / 1e6,
      latency:percentile(50),
      latency:percentile(99),
      latency.max,
      errors.connect + errors.read + errors.write + errors.timeout + errors.status,
      errors.status
    )
  )
end
