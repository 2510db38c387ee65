"""The session lifecycle Lua scripts (start, end, close) of SessionStore.

Like apply_detection.lua, each checks its arguments before its first write, so a bad
value rejects the whole call ({-1, reason}) instead of failing half-way, and each puts
the retention TTL on every key it writes. ARGV "limits" is "ts_min,ts_max" (epoch s).

Each touches only the session's own keys (one hash tag: one Redis Cluster slot); the
session indexes and the camera's live hash are written after it by SessionStore, in
separate commands, from what it returns. CLOSE_LIVE is the camera-side half of a close.
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

# KEYS: 1 meta
# ARGV: 1 camera, 2 session, 3 ts, 4 source, 5 now, 6 ttl_s, 7 valence JSON, 8 limits
# Returns {1 fresh | 0 known | -1 rejected, reason, started_at, status}.
START_SESSION = _CHECKS + """
local limit = split(ARGV[8])
local ts_min, ts_max = tonumber(limit[1]), tonumber(limit[2])
local ts, now, ttl = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
if not within(ts, ts_min, ts_max) then return {-1, 'ts out of range', '', ''} end
if not within(now, ts_min, ts_max) then return {-1, 'clock out of range', '', ''} end
if not whole(ttl, 0, 2^31) then return {-1, 'bad ttl', '', ''} end

local fresh = redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
redis.call('HSETNX', KEYS[1], 'camera_id', ARGV[1])
redis.call('HSETNX', KEYS[1], 'status', 'open')
redis.call('HSETNX', KEYS[1], 'source', ARGV[4])
redis.call('HSETNX', KEYS[1], 'valence', ARGV[7])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'source', ARGV[4]) end
local m = redis.call('HMGET', KEYS[1], 'started_at', 'status')
if m[2] ~= 'closed' then redis.call('HSET', KEYS[1], 'updated_at', ARGV[5]) end
return {fresh, '', m[1], m[2]}
"""

# KEYS: 1 meta, 2 totals
# ARGV: 1 camera, 2 session, 3 ts, 4 expected frames ("" = unknown), 5 reason, 6 now,
#       7 ttl_s, 8 limits, 9 max expected
# Returns {status or "rejected", handled frames, expected frames, reason, started_at}.
END_SESSION = _CHECKS + """
local limit = split(ARGV[8])
local ts_min, ts_max = tonumber(limit[1]), tonumber(limit[2])
local ts, now, ttl = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
local function reject(why) return {'rejected', '0', '', why, ''} end
if not within(ts, ts_min, ts_max) then return reject('ts out of range') end
if not within(now, ts_min, ts_max) then return reject('clock out of range') end
if ARGV[4] ~= '' and not whole(tonumber(ARGV[4]), 0, tonumber(ARGV[9])) then
  return reject('frames_published out of range')
end
if not whole(ttl, 0, 2^31) then return reject('bad ttl') end

local status = redis.call('HGET', KEYS[1], 'status')
local counts = redis.call('HMGET', KEYS[2], 'frames', 'skipped_frames')
local handled = tostring((tonumber(counts[1]) or 0) + (tonumber(counts[2]) or 0))
if status == 'closed' then
  return {status, handled, redis.call('HGET', KEYS[1], 'expected_frames') or '', '', ''}
end
redis.call('HSETNX', KEYS[1], 'camera_id', ARGV[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'ending', 'expected_frames', ARGV[4],
           'end_reason', ARGV[5], 'ended_at', ARGV[3], 'updated_at', ARGV[6])
return {'ending', handled, ARGV[4], '', redis.call('HGET', KEYS[1], 'started_at')}
"""

# KEYS: 1 meta
# ARGV: 1 session, 2 reason, 3 now, 4 ttl_s
# Returns {1 when this call closed the session | 0 when it was closed or gone already,
#          the session's camera id ("" when gone)}.
CLOSE_SESSION = """
local m = redis.call('HMGET', KEYS[1], 'status', 'ended_at', 'last_seen', 'end_reason',
                     'camera_id')
if not m[1] or m[1] == 'closed' then return {0, m[5] or ''} end
local ttl = tonumber(ARGV[4]) or 0
redis.call('HSET', KEYS[1], 'status', 'closed')
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
if not m[2] then redis.call('HSET', KEYS[1], 'ended_at', m[3] or ARGV[3]) end
if not m[4] or m[4] == '' then redis.call('HSET', KEYS[1], 'end_reason', ARGV[2]) end
return {1, m[5] or ''}
"""

# KEYS: 1 camera live
# ARGV: 1 session, 2 ttl_s
# Marks the camera's live state closed if it still shows that session (idempotent).
CLOSE_LIVE = """
if redis.call('HGET', KEYS[1], 'session_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'closed')
local ttl = tonumber(ARGV[2]) or 0
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""
