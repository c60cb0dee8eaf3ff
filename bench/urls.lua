-- wrk script: every request is a random line of the file named by $URLS (paths, one per line).
-- Optional $AUTH is sent as the Authorization header, $COOKIE as the Cookie header. done()
-- prints one JSON line (WRKJSON ...).
local paths = {}
local file = os.getenv("URLS")
for line in io.lines(file) do
  if #line > 0 then paths[#paths + 1] = line end
end
local auth = os.getenv("AUTH")
local headers = {}
if auth and #auth > 0 then headers["Authorization"] = auth end
local cookie = os.getenv("COOKIE")
if cookie and #cookie > 0 then headers["Cookie"] = cookie end

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter * 7919)
end

function init(args)
  math.randomseed(seed or 1)
end

local n = #paths
request = function()
  return wrk.format("GET", paths[math.random(n)], headers)
end

function done(summary, latency, requests)
  local s = summary
  local secs = s.duration / 1e6
  local e = s.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"bytes":%d,"non2xx":%d,' ..
    '"connect_err":%d,"read_err":%d,"write_err":%d,"timeout":%d,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f}\n',
    s.requests, secs, s.requests / secs, s.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000))
end
