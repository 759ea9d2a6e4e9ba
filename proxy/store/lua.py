"""Lua run inside Redis, so each operation is atomic across replicas. Every script touches
keys of one hash tag only, so it runs unchanged on a Redis Cluster."""

from __future__ import annotations

# KEYS: stream, dedupe key (same tag). ARGV: payload, maxlen, dedupe ttl s, min id ms or ''.
# The dedupe key makes a retried write (reply lost, or flushed from the buffer) land once.
APPEND_EVENT = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  return 0
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1])
if ARGV[4] ~= '' then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[4])
end
return 1
"""

# Token buckets as in proxy/store/limits.py, on the server's clock so replicas agree.
# Hash fields: <d>l level, <d>a time, <d>c capacity per minute, d = r (requests) | t (tokens).
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(d, cap)
  local l = tonumber(redis.call('HGET', KEYS[1], d .. 'l'))
  local a = tonumber(redis.call('HGET', KEYS[1], d .. 'a'))
  if l == nil or a == nil then return cap end
  return math.min(cap, l + math.max(0, now - a) * cap / 60)
end
local function store(d, l, cap)
  redis.call('HSET', KEYS[1], d .. 'l', tostring(l), d .. 'a', tostring(now),
             d .. 'c', tostring(cap))
  local debt = math.max(0, -l)
  redis.call('EXPIRE', KEYS[1], math.ceil(120 + debt * 60 / cap))
end
"""

# KEYS: the key's bucket hash. ARGV: requests, tokens, requests/min or '', tokens/min or ''.
# Returns {allowed 0|1, retry_after as a string (Lua numbers would be truncated), the limit
# that waits longest: 'r' | 't'}.
TAKE = (
    _BUCKET
    + """
local wait = 0
local limit = 'r'
local dims = {}
for _, spec in ipairs({{'r', ARGV[1], ARGV[3]}, {'t', ARGV[2], ARGV[4]}}) do
  if spec[3] ~= '' then
    local cap = tonumber(spec[3])
    local amount = tonumber(spec[2])
    local lvl = level(spec[1], cap)
    local missing = math.min(amount, cap) - lvl
    if missing > 0 and missing * 60 / cap > wait then
      wait = missing * 60 / cap
      limit = spec[1]
    end
    dims[#dims + 1] = {spec[1], lvl - amount, cap}
  end
end
if wait > 0 then return {0, tostring(wait), limit} end
for _, d in ipairs(dims) do store(d[1], d[2], d[3]) end
return {1, '0'}
"""
)

# KEYS: the key's bucket hash. ARGV: tokens. Charges the token bucket `take` last sized.
ADD_TOKENS = (
    _BUCKET
    + """
local cap = tonumber(redis.call('HGET', KEYS[1], 'tc'))
if cap == nil then return 0 end
store('t', level('t', cap) - tonumber(ARGV[1]), cap)
return 1
"""
)
