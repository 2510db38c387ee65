-- Apply one detection message atomically, at most once per frame (exactly-once effect).
-- Every value is checked before the first write, so the script either applies the whole
-- frame, changes nothing (a duplicate: its bit in the run's seen bitmap is already set),
-- or rejects it (changes nothing, says why): never half a frame. No loop runs over a
-- range taken from the message; the loops below walk the 7 probability fields and the
-- frame's track ids (at most max_faces).
--
-- It touches only the session's own keys (one hash tag, so one Redis Cluster slot). The
-- camera's live state (live.lua) and the cross-session indexes are written after it, in
-- separate commands (SessionStore.apply_detections), from what it returns.
--
-- KEYS: 1 seen bitmap of the frame's run, 2 meta, 3 totals, 4 buckets, 5 tracks,
--       6 bucket_tracks, 7 bucket_track_ids
-- ARGV (packed into few arguments: client-side encoding per argument is the cost that
-- dominates at high rates): 1 camera_id, 2 session_id, 3 comma-separated numbers
-- "seq,t,offset_s,capture_ts,now,faces,excluded,sentiment_sum,ttl_s,started_at,skipped,
-- <one probability sum per field>", 4 comma-separated probability
-- field names, 5 comma-separated track ids (may be empty), 6 the valence weights as JSON
-- (recorded in the session meta once, so reports state the weights the sums were made
-- with), 7 limits "max_seq,max_offset_s,max_faces,max_excluded,ts_min,ts_max,max_track_id,
-- prob_tolerance" (moodstream.schemas' bounds).
-- t is the bucket second; skipped 1 = the detector dead-lettered the frame, 2 = it skipped
-- a live frame read too late ("stale", also counted in meta stale_frames): both counted as
-- handled (skipped_frames), no faces; ttl_s 0 = none.
-- Returns {applied (1 | 0 duplicate | -1 rejected), status or reason, handled frames
-- (analysed + skipped), expected_frames ("" when unknown), started_at (of the session
-- meta), people (distinct tracks of the session), updated_at (of the session meta)}.

local function split(text)
  local out = {}
  for item in string.gmatch(text, '[^,]+') do out[#out + 1] = item end
  return out
end

local function within(x, low, high)
  -- NaN fails every comparison; inf fails the bound.
  return x ~= nil and x >= low and x <= high
end

local function whole(x, low, high)
  return within(x, low, high) and math.floor(x) == x
end

local camera, session = ARGV[1], ARGV[2]
local v, limit = split(ARGV[3]), split(ARGV[7])
local max_seq, max_offset, max_faces, max_excluded = tonumber(limit[1]), tonumber(limit[2]),
  tonumber(limit[3]), tonumber(limit[4])
local ts_min, ts_max, max_track, tolerance = tonumber(limit[5]), tonumber(limit[6]),
  tonumber(limit[7]), tonumber(limit[8])
local seq, t, offset_raw, capture_raw, now_raw = v[1], v[2], v[3], v[4], v[5]
local offset_s, capture_ts, now = tonumber(offset_raw), tonumber(capture_raw), tonumber(now_raw)
local faces, excluded, sentiment_raw = tonumber(v[6]), tonumber(v[7]), v[8]
local sentiment_sum, ttl, started_at = tonumber(v[8]), tonumber(v[9]), v[10]
local skipped = tonumber(v[11])
local prob_fields, tracks = split(ARGV[4]), split(ARGV[5])
local n_probs = #prob_fields
local prob_at = 12  -- first probability sum in v

local function invalid()
  if #v ~= prob_at - 1 + n_probs or n_probs ~= 7 then return 'malformed arguments' end
  if not whole(tonumber(seq), 0, max_seq) then return 'seq out of range' end
  if not whole(tonumber(t), 0, max_offset) or not within(offset_s, 0, max_offset)
      or tonumber(t) ~= math.floor(offset_s) then return 'offset_s out of range' end
  if not within(capture_ts, ts_min, ts_max) then return 'capture_ts out of range' end
  if not within(tonumber(started_at), ts_min - max_offset, ts_max) then
    return 'started_at out of range' end
  if not within(now, ts_min, ts_max) then return 'clock out of range' end
  if not whole(faces, 0, max_faces) then return 'faces out of range' end
  if not whole(excluded, 0, max_excluded) then return 'excluded_faces out of range' end
  if skipped ~= 0 and not ((skipped == 1 or skipped == 2) and faces == 0) then
    return 'bad skipped flag' end
  local most = faces * (1 + tolerance)
  if not within(sentiment_sum, -most, most) then return 'sentiment_sum out of range' end
  for i = 0, n_probs - 1 do
    if not within(tonumber(v[prob_at + i]), 0, most) then return 'probability sum out of range' end
  end
  if #tracks > faces then return 'more tracks than faces' end
  for _, track in ipairs(tracks) do
    if not whole(tonumber(track), 0, max_track) then return 'track id out of range' end
  end
  if not whole(ttl, 0, 2^31) then return 'bad ttl' end
  return nil
end

local reason = invalid()
if reason then return {-1, reason, '0', '', '', 0, ''} end

local function handled()
  local counts = redis.call('HMGET', KEYS[3], 'frames', 'skipped_frames')
  return tostring((tonumber(counts[1]) or 0) + (tonumber(counts[2]) or 0))
end

-- First write: the frame's bit. Already set = a duplicate, nothing changes.
if redis.call('SETBIT', KEYS[1], seq, 1) == 1 then
  local m = redis.call('HMGET', KEYS[2], 'status', 'expected_frames', 'started_at', 'updated_at')
  return {0, m[1] or 'open', handled(), m[2] or '', m[3] or started_at,
          redis.call('SCARD', KEYS[5]), m[4] or ''}
end

-- Session meta: opened by its first frame unless session_start came first.
redis.call('HSETNX', KEYS[2], 'camera_id', camera)
redis.call('HSETNX', KEYS[2], 'started_at', started_at)
redis.call('HSETNX', KEYS[2], 'status', 'open')
redis.call('HSETNX', KEYS[2], 'valence', ARGV[6])
local meta = redis.call('HMGET', KEYS[2], 'status', 'expected_frames', 'last_seen', 'end_reason',
                        'started_at')
local status, expected = meta[1], meta[2] or ''
if status == 'closed' and meta[4] == 'idle' then
  -- Closed by the idle timeout, yet the camera kept sending: the session goes on.
  status = 'open'
  redis.call('HSET', KEYS[2], 'status', status)
  redis.call('HDEL', KEYS[2], 'ended_at', 'end_reason')
end
if not tonumber(meta[3]) or tonumber(meta[3]) < capture_ts then
  redis.call('HSET', KEYS[2], 'last_seen', capture_raw)
end
redis.call('HSET', KEYS[2], 'updated_at', now_raw)

local function expire_all()
  if ttl > 0 then
    for i = 1, 7 do redis.call('EXPIRE', KEYS[i], ttl) end
  end
end

local function done()
  return {1, status, handled(), expected, meta[5], redis.call('SCARD', KEYS[5]), now_raw}
end

if skipped ~= 0 then
  -- Handled, nothing to add: no bucket, no track, no live state.
  redis.call('HINCRBY', KEYS[3], 'skipped_frames', 1)
  if skipped == 2 then redis.call('HINCRBY', KEYS[2], 'stale_frames', 1) end
  expire_all()
  return done()
end

-- Totals and the per-second bucket.
redis.call('HINCRBY', KEYS[3], 'frames', 1)
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

expire_all()
return done()
