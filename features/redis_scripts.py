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

# append(key, base): ARGV[base] max events, ARGV[base + 1] retention cutoff (epoch s), ARGV[base + 2] ttl
# (s), ARGV[base + 3..] encoded rows "[at,...]". Appends only to an existing summary (a missing one stays
# missing, the service rebuilds it from the history); trims to the newest max events and drops rows older
# than the cutoff. Returns 1 when appended, 0 when there was no summary.
_APPEND = """
local function append(key, base)
  if redis.call('EXISTS', key) == 0 then return 0 end
  redis.call('RPUSH', key, unpack(ARGV, base + 3))
  local drop = redis.call('LLEN', key) - 1 - tonumber(ARGV[base])
  local cutoff = tonumber(ARGV[base + 1])
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
  redis.call('EXPIRE', key, ARGV[base + 2])
  return 1
end
"""

# KEYS[1] summary list; ARGV as `append` with base 1.
APPEND_EVENTS = _APPEND + "return append(KEYS[1], 1)\n"

# The customer lock taken and the customer loaded in one round trip (coordination/holds.py).
# KEYS[1] lock key, KEYS[2] customer hash, KEYS[3] summary list (one hash tag: one slot); ARGV[1] the
# holder's token, ARGV[2] the lease (ms). -> {0} while another holder has the lock, else
# {1, flat HGETALL, LRANGE}.
LOCK_AND_LOAD = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
return {1, redis.call('HGETALL', KEYS[2]), redis.call('LRANGE', KEYS[3], 0, -1)}
"""

# The decision's events appended and the lock released in one round trip.
# KEYS[1] summary list, KEYS[2] lock key; ARGV[1] the holder's token, then ARGV as `append` with base 2
# (no rows: release only). The lock is deleted only if this holder still has it. Returns the append's result.
APPEND_AND_UNLOCK = _APPEND + """
local appended = 0
if #ARGV > 4 then appended = append(KEYS[1], 2) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return appended
"""

# KEYS[1] summary list; ARGV the encoded rows to take out (a decision that was not recorded): each row
# once, wherever it is. Rows trimmed meanwhile are simply not found.
REMOVE_EVENTS = """
local removed = 0
for i = 1, #ARGV do removed = removed + redis.call('LREM', KEYS[1], 1, ARGV[i]) end
return removed
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
