-- wrk script of the gateway benchmark (bench/load.py): sends pre-built raw requests read
-- from $BENCH_REQUESTS (entries "<length>\n<bytes>"), each once unless BENCH_WRAP=1, and
-- counts accepted transactions (">ACSP<" in a pacs.002, ">PR03<" in an ibps.102) and
-- statuses. Prints one JSON line when done. Threads take every n-th request.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local f = assert(io.open(os.getenv("BENCH_REQUESTS"), "rb"))
  local nthreads = counter
  reqs = {}
  local i = 0
  while true do
    local line = f:read("*l")
    if not line then break end
    local body = f:read(tonumber(line))
    if (nthreads == 0) or (i % nthreads == id) then table.insert(reqs, body) end
    i = i + 1
  end
  f:close()
  wrap = os.getenv("BENCH_WRAP") == "1"
  nxt = 1
  accepted = 0
  ok = 0
  other = 0
end

function request()
  if nxt > #reqs then
    if wrap then
      nxt = 1
    else
      wrk.thread:stop()
      return reqs[#reqs]
    end
  end
  local r = reqs[nxt]
  nxt = nxt + 1
  return r
end

local function count(body, marker)
  local n, pos = 0, 1
  while true do
    local s, e = string.find(body, marker, pos, true)
    if not s then return n end
    n = n + 1
    pos = e + 1
  end
end

function response(status, headers, body)
  if status == 200 or status == 201 then ok = ok + 1 else other = other + 1 end
  accepted = accepted + count(body, ">ACSP<") + count(body, ">PR03<")
end

function done(summary, latency, requests)
  local acc, oks, others = 0, 0, 0
  for _, t in ipairs(threads) do
    acc = acc + t:get("accepted")
    oks = oks + t:get("ok")
    others = others + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "accepted": %d, "ok": %d, "other_status": %d, "duration_s": %.3f, ' ..
    '"errors": %d, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, acc, oks, others, summary.duration / 1e6,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
