"""The session lifecycle Lua scripts (start, end, close) of SessionStore.

Like apply_detection.lua, each checks its arguments before its first write, so a bad
value rejects the whole call ({-1, reason}) instead of failing half-way, and each puts
the retention TTL on every key it writes. ARGV "limits" is "ts_min,ts_max" (epoch s).
"""

# Shared prologue: numeric checks (NaN fails every comparison, inf fails the bound).
_CHECKS = """
local function within(x, low, high) return x ~= nil and x >= low and x <= high end
local function whole(x, low, high) return within(x, low, high) and math.floor(x) == x end
local function split(text)
  local out = {}
  for item in string.gmatch(text, '[^,]+') do out[#out + 1] = item end
  return out
end
"""

# KEYS: 1 meta, 2 sessions, 3 active sessions, 4 camera live, 5 cameras
# ARGV: 1 camera, 2 session, 3 ts, 4 source, 5 now, 6 ttl_s, 7 valence JSON, 8 limits,
#       9 index_ttl_s
# Returns {1 fresh | 0 known | -1 rejected, reason}.
START_SESSION = _CHECKS + """
local limit = split(ARGV[8])
local ts_min, ts_max = tonumber(limit[1]), tonumber(limit[2])
local ts, now, ttl, index_ttl = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[9])
if not within(ts, ts_min, ts_max) then return {-1, 'ts out of range'} end
if not within(now, ts_min, ts_max) then return {-1, 'clock out of range'} end
if not whole(ttl, 0, 2^31) or not whole(index_ttl, 0, 2^31) then return {-1, 'bad ttl'} end

local fresh = redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
redis.call('HSETNX', KEYS[1], 'camera_id', ARGV[1])
redis.call('HSETNX', KEYS[1], 'status', 'open')
redis.call('HSETNX', KEYS[1], 'source', ARGV[4])
redis.call('HSETNX', KEYS[1], 'valence', ARGV[7])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'source', ARGV[4]) end
redis.call('ZADD', KEYS[2], 'NX', redis.call('HGET', KEYS[1], 'started_at'), ARGV[2])
if index_ttl > 0 then redis.call('EXPIRE', KEYS[2], index_ttl) end
if redis.call('HGET', KEYS[1], 'status') ~= 'closed' then
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
  if ttl > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
end
if fresh == 1 then
  -- A new session on this camera: the live EMA starts over from its first face.
  redis.call('HDEL', KEYS[4], 'sentiment', 'dominant', 'alert')
  redis.call('HSET', KEYS[4], 'session_id', ARGV[2], 'status', 'open', 'faces', 0, 'people', 0,
             'last_seen', ARGV[3])
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[4], ttl)
    redis.call('EXPIRE', KEYS[5], ttl)
  end
end
return {fresh, ''}
"""

# KEYS: 1 meta, 2 totals, 3 active sessions, 4 sessions
# ARGV: 1 camera, 2 session, 3 ts, 4 expected frames ("" = unknown), 5 reason, 6 now,
#       7 ttl_s, 8 limits, 9 max expected, 10 index_ttl_s
# Returns {status or "rejected", handled frames, expected frames, reason}.
END_SESSION = _CHECKS + """
local limit = split(ARGV[8])
local ts_min, ts_max = tonumber(limit[1]), tonumber(limit[2])
local ts, now, ttl, index_ttl = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7]),
  tonumber(ARGV[10])
local function reject(why) return {'rejected', '0', '', why} end
if not within(ts, ts_min, ts_max) then return reject('ts out of range') end
if not within(now, ts_min, ts_max) then return reject('clock out of range') end
if ARGV[4] ~= '' and not whole(tonumber(ARGV[4]), 0, tonumber(ARGV[9])) then
  return reject('frames_published out of range')
end
if not whole(ttl, 0, 2^31) or not whole(index_ttl, 0, 2^31) then return reject('bad ttl') end

local status = redis.call('HGET', KEYS[1], 'status')
local counts = redis.call('HMGET', KEYS[2], 'frames', 'skipped_frames')
local handled = tostring((tonumber(counts[1]) or 0) + (tonumber(counts[2]) or 0))
if status == 'closed' then
  return {status, handled, redis.call('HGET', KEYS[1], 'expected_frames') or '', ''}
end
redis.call('HSETNX', KEYS[1], 'camera_id', ARGV[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
redis.call('ZADD', KEYS[4], 'NX', redis.call('HGET', KEYS[1], 'started_at'), ARGV[2])
if index_ttl > 0 then redis.call('EXPIRE', KEYS[4], index_ttl) end
redis.call('HSET', KEYS[1], 'status', 'ending', 'expected_frames', ARGV[4],
           'end_reason', ARGV[5], 'ended_at', ARGV[3], 'updated_at', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[2])
if ttl > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
return {'ending', handled, ARGV[4], ''}
"""

# KEYS: 1 meta, 2 active sessions, 3 camera live
# ARGV: 1 session, 2 reason, 3 now, 4 ttl_s
# Returns 1 when this call closed the session, 0 when it was closed or gone already.
CLOSE_SESSION = """
local m = redis.call('HMGET', KEYS[1], 'status', 'ended_at', 'last_seen', 'end_reason')
redis.call('ZREM', KEYS[2], ARGV[1])
if not m[1] or m[1] == 'closed' then return 0 end
local ttl = tonumber(ARGV[4]) or 0
redis.call('HSET', KEYS[1], 'status', 'closed')
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
if not m[2] then redis.call('HSET', KEYS[1], 'ended_at', m[3] or ARGV[3]) end
if not m[4] or m[4] == '' then redis.call('HSET', KEYS[1], 'end_reason', ARGV[2]) end
if redis.call('HGET', KEYS[3], 'session_id') == ARGV[1] then
  redis.call('HSET', KEYS[3], 'status', 'closed')
  if ttl > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
end
return 1
"""
