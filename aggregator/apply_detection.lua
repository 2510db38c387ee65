-- Apply one detection message atomically, at most once per frame (exactly-once effect).
-- The whole script runs as one Redis command: either every increment lands or none does,
-- and a frame whose seq is already in the `seen` set changes nothing.
--
-- KEYS: 1 seen, 2 meta, 3 totals, 4 buckets, 5 tracks, 6 bucket_tracks, 7 bucket_track_ids,
--       8 sessions index, 9 cameras index, 10 camera live, 11 active sessions
-- ARGV (packed into few arguments: client-side encoding per argument is the cost that
-- dominates at high rates): 1 camera_id, 2 session_id, 3 comma-separated numbers
-- "seq,t,offset_s,capture_ts,now,faces,excluded,sentiment_sum,ttl_s,ema_alpha,started_at,
-- <one probability sum per field>", 4 comma-separated probability field names,
-- 5 comma-separated track ids (may be empty), 6 the valence weights as JSON (recorded in
-- the session meta once, so reports state the weights the sums were made with).
-- t is the bucket second; ttl_s 0 = none.
-- Returns {applied (0|1), status, frames, expected_frames ("" when unknown)}.

local function split(text)
  local out = {}
  for item in string.gmatch(text, '[^,]+') do out[#out + 1] = item end
  return out
end

local camera, session = ARGV[1], ARGV[2]
local v = split(ARGV[3])
local seq, t, offset_raw, capture_raw, now_raw = v[1], v[2], v[3], v[4], v[5]
local offset_s, capture_ts, now = tonumber(offset_raw), tonumber(capture_raw), tonumber(now_raw)
local faces, excluded, sentiment_raw = tonumber(v[6]), tonumber(v[7]), v[8]
local sentiment_sum, ttl, alpha, started_at = tonumber(v[8]), tonumber(v[9]), tonumber(v[10]), v[11]
local prob_fields, tracks = split(ARGV[4]), split(ARGV[5])
local n_probs = #prob_fields
local prob_at = 12  -- first probability sum in v

local function meta_reply()
  local m = redis.call('HMGET', KEYS[2], 'status', 'expected_frames')
  local frames = redis.call('HGET', KEYS[3], 'frames') or '0'
  return {m[1] or 'open', frames, m[2] or ''}
end

if redis.call('SADD', KEYS[1], seq) == 0 then
  local r = meta_reply()
  return {0, r[1], r[2], r[3]}
end

-- Session meta: opened by its first frame unless session_start came first.
redis.call('HSETNX', KEYS[2], 'camera_id', camera)
redis.call('HSETNX', KEYS[2], 'started_at', started_at)
redis.call('HSETNX', KEYS[2], 'status', 'open')
redis.call('HSETNX', KEYS[2], 'valence', ARGV[6])
redis.call('ZADD', KEYS[8], 'NX', redis.call('HGET', KEYS[2], 'started_at'), session)
local meta = redis.call('HMGET', KEYS[2], 'status', 'expected_frames', 'last_seen', 'end_reason')
local status, expected = meta[1], meta[2] or ''
if status == 'closed' and meta[4] == 'idle' then
  -- Closed by the idle timeout, yet the camera kept sending: the session goes on.
  status = 'open'
  redis.call('HSET', KEYS[2], 'status', status)
  redis.call('HDEL', KEYS[2], 'ended_at', 'end_reason')
end
if not meta[3] or tonumber(meta[3]) < capture_ts then
  redis.call('HSET', KEYS[2], 'last_seen', capture_raw)
end
redis.call('HSET', KEYS[2], 'updated_at', now_raw)
if status ~= 'closed' then
  redis.call('ZADD', KEYS[11], now, session)
end

-- Totals and the per-second bucket.
local frames = redis.call('HINCRBY', KEYS[3], 'frames', 1)
redis.call('HINCRBY', KEYS[4], t .. '|frames', 1)
if excluded > 0 then
  redis.call('HINCRBY', KEYS[3], 'excluded_faces', excluded)
end
if faces > 0 then
  redis.call('HINCRBY', KEYS[3], 'frames_with_faces', 1)
  redis.call('HINCRBY', KEYS[3], 'faces', faces)
  redis.call('HINCRBY', KEYS[4], t .. '|faces', faces)
  redis.call('HINCRBYFLOAT', KEYS[3], 'sentiment_sum', sentiment_raw)
  redis.call('HINCRBYFLOAT', KEYS[4], t .. '|sentiment_sum', sentiment_raw)
  for i = 0, n_probs - 1 do
    local field, value = prob_fields[i + 1], v[prob_at + i]
    redis.call('HINCRBYFLOAT', KEYS[3], field, value)
    redis.call('HINCRBYFLOAT', KEYS[4], t .. '|' .. field, value)
  end
end

-- People: distinct tracks per session and per second.
for _, track in ipairs(tracks) do
  redis.call('SADD', KEYS[5], track)
  if redis.call('SADD', KEYS[7], t .. '|' .. track) == 1 then
    redis.call('HINCRBY', KEYS[6], t, 1)
  end
end

if ttl > 0 then
  for i = 1, 7 do
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end

-- Camera live state: the newest frame wins; a replayed older frame, or a late frame of
-- the previous session after session_start moved last_seen on, does not move it back.
local live = redis.call('HMGET', KEYS[10], 'session_id', 'last_seen', 'sentiment')
local same_session = live[1] == session
if not live[2] or tonumber(live[2]) <= capture_ts then
  redis.call('HSET', KEYS[10], 'session_id', session, 'last_seen', capture_raw,
             'capture_ts', capture_raw, 'offset_s', offset_raw, 'applied_at', now_raw,
             'faces', faces, 'people', redis.call('SCARD', KEYS[5]), 'status', status)
  if faces > 0 then
    local a = alpha
    if not same_session or not live[3] then a = 1 end
    local function ema(field, value)
      local prev = tonumber(redis.call('HGET', KEYS[10], field) or value)
      local v = a * value + (1 - a) * prev
      redis.call('HSET', KEYS[10], field, tostring(v))
      return v
    end
    ema('sentiment', sentiment_sum / faces)
    local best, best_v = '', -1
    for i = 0, n_probs - 1 do
      local field = prob_fields[i + 1]
      local mix = ema(field, tonumber(v[prob_at + i]) / faces)
      if mix > best_v then best, best_v = string.sub(field, 3), mix end
    end
    redis.call('HSET', KEYS[10], 'dominant', best)
  end
  redis.call('ZADD', KEYS[9], capture_ts, camera)
end

return {1, status, tostring(frames), expected}
