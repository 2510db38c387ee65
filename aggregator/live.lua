-- Move one camera's live state by one newly applied frame (a frame with faces or without,
-- never a skipped one). It touches only the camera's live hash ({cam:C}: one Redis Cluster
-- slot) and runs after apply_detection.lua applied that frame, so each frame moves it once.
-- The newest frame wins: a replayed older frame, or a late frame of the previous session
-- after session_start moved last_seen on, does not move it back.
--
-- KEYS: 1 camera live
-- ARGV 1-7: the frame's apply_detection.lua arguments, as they are (that script checked
-- them); 8 the session's status, 9 its people (distinct tracks), 10 the EMA alpha in (0, 1].
-- Returns 1 when the live state moved, 0 when a newer frame holds it.

local function split(text)
  local out = {}
  for item in string.gmatch(text, '[^,]+') do out[#out + 1] = item end
  return out
end

local session, v, prob_fields = ARGV[2], split(ARGV[3]), split(ARGV[4])
local offset_raw, capture_raw, now_raw = v[3], v[4], v[5]
local capture_ts, faces, sentiment_sum, ttl = tonumber(capture_raw), tonumber(v[6]),
  tonumber(v[8]), tonumber(v[9])
local prob_at = 12  -- first probability sum in v (apply_detection.lua's layout)
local status, people, alpha = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
if not (capture_ts and faces and sentiment_sum and ttl and people and alpha
        and alpha > 0 and alpha <= 1) then
  return redis.error_reply('live.lua: malformed arguments')
end

local live = redis.call('HMGET', KEYS[1], 'session_id', 'last_seen', 'sentiment')
if tonumber(live[2]) and tonumber(live[2]) > capture_ts then
  if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
  return 0
end

redis.call('HSET', KEYS[1], 'session_id', session, 'last_seen', capture_raw,
           'capture_ts', capture_raw, 'offset_s', offset_raw, 'applied_at', now_raw,
           'faces', faces, 'people', people, 'status', status)
if faces > 0 then
  local a = alpha
  if live[1] ~= session or not tonumber(live[3]) then a = 1 end  -- a new session starts over
  local function ema(field, value)
    local prev = tonumber(redis.call('HGET', KEYS[1], field)) or value
    local mixed = a * value + (1 - a) * prev
    redis.call('HSET', KEYS[1], field, tostring(mixed))
    return mixed
  end
  ema('sentiment', sentiment_sum / faces)
  local best, best_v = '', -1
  for i = 0, #prob_fields - 1 do
    local field = prob_fields[i + 1]
    local mix = ema(field, tonumber(v[prob_at + i]) / faces)
    if mix > best_v then best, best_v = string.sub(field, 3), mix end
  end
  redis.call('HSET', KEYS[1], 'dominant', best)
end
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
