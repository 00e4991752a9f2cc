"""The Lua scripts of the Redis adapters: each runs atomically on the server, in one round trip.

Every script touches only keys that share one hash tag (the customer id, or one budget key), so they run
unchanged on Redis Cluster.
"""

from __future__ import annotations

SUMMARY_HEADER = b"#"  # first element of a summary list: an empty summary still exists as a key

# KEYS[1] customer hash, KEYS[2] summary list -> {flat HGETALL, LRANGE}.
LOAD = """
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}
"""

# KEYS[1] customer hash; ARGV[1] packed batch features, ARGV[2] ttl (s). One command instead of HSET +
# EXPIRE: the bulk load is bound by the client's cost per command, so this nearly doubles its rows/s.
PUT_FEATURES = """
redis.call('HSET', KEYS[1], 'f', ARGV[1])
return redis.call('EXPIRE', KEYS[1], ARGV[2])
"""

# KEYS[1] summary list; ARGV[1] ttl (s), ARGV[2..] the header and the encoded rows. Replaces the summary
# atomically (readers see the old one or the new one). A script rather than MULTI/EXEC: redis-py's asyncio
# cluster client runs each command queued in a transaction on a thread of its own, blocking the event loop.
STORE_SUMMARY = """
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 1000 do redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV))) end
return redis.call('EXPIRE', KEYS[1], ARGV[1])
"""

# KEYS[1] summary list; ARGV[1] max events, ARGV[2] retention cutoff (epoch s), ARGV[3] ttl (s),
# ARGV[4..] encoded rows "[at,...]". Appends only to an existing summary (a missing one stays missing, the
# service rebuilds it from the history); trims to the newest max events and drops rows older than the
# cutoff. Returns 1 when appended, 0 when there was no summary.
APPEND_EVENTS = """
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('RPUSH', key, unpack(ARGV, 4))
local drop = redis.call('LLEN', key) - 1 - tonumber(ARGV[1])
local cutoff = tonumber(ARGV[2])
local function at(row) return tonumber(string.match(row or '', '^%[([^,]+),')) end
local oldest = at(redis.call('LINDEX', key, 1))
if oldest ~= nil and oldest < cutoff then
  -- only when the oldest row is out of the window do we pay for a scan
  local rows = redis.call('LRANGE', key, 1, -1)
  local n = 0
  while n < #rows and (at(rows[n + 1]) or cutoff) < cutoff do n = n + 1 end
  if n > drop then drop = n end
end
if drop > 0 then
  redis.call('LPOP', key)
  redis.call('LTRIM', key, drop, -1)
  redis.call('LPUSH', key, '#')
end
redis.call('EXPIRE', key, ARGV[3])
return 1
"""

# KEYS[1] customer hash; ARGV[1] event time, ARGV[2] ttl (s) for a hash that has none yet (a customer
# first seen through an event), ARGV[3] the most event times a count keeps, then (op, feature, value)
# triples: a JSON value, or for "count" the window in seconds. Values are encoded by the caller; ops and
# numeric values are checked before the call, so no update fails half way.
# A count's field `w:{feature}` holds "window|t1,t2,..." (times oldest first, as the caller wrote them, so
# that no precision is lost to Lua's number formatting), trimmed as features/updates.py count_event does.
APPLY_UPDATES = """
local key, at, cap = KEYS[1], ARGV[1], tonumber(ARGV[3])
local function count_event(field, window)
  local times = {}
  local stored = redis.call('HGET', key, field)
  if stored then
    for t in string.gmatch(string.match(stored, '|(.*)$') or '', '[^,]+') do times[#times + 1] = t end
  end
  -- events may arrive out of order: insert this one after every time not later than it
  local n, i = tonumber(at), #times
  while i > 0 and tonumber(times[i]) > n do i = i - 1 end
  table.insert(times, i + 1, at)
  local first = math.max(1, #times - cap + 1)
  local cutoff = tonumber(times[#times]) - tonumber(window)
  while tonumber(times[first]) < cutoff do first = first + 1 end
  redis.call('HSET', key, field, window .. '|' .. table.concat(times, ',', first, #times))
end
for i = 4, #ARGV, 3 do
  local op, field = ARGV[i], 'e:' .. ARGV[i + 1]
  local value = ARGV[i + 2]
  if op == 'incr' then
    local current = redis.call('HGET', key, field)
    -- a value that is not a number (cleared with null, or set to text) counts as 0, as in process
    if current and tonumber(current) == nil then redis.call('HSET', key, field, '0') end
    redis.call('HINCRBYFLOAT', key, field, value)
  elseif op == 'set' then
    redis.call('HSET', key, field, value)
  elseif op == 'max' then
    local current = tonumber(redis.call('HGET', key, field))
    if current == nil or tonumber(value) > current then redis.call('HSET', key, field, value) end
  elseif op == 'count' then
    count_event('w:' .. ARGV[i + 1], value)
  else
    return redis.error_reply('unknown feature update op ' .. op)
  end
  redis.call('HSET', key, 't:' .. ARGV[i + 1], at)
end
if redis.call('TTL', key) == -1 then redis.call('EXPIRE', key, ARGV[2]) end
return 1
"""
