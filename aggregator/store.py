"""Writes the Redis data model (moodstream.redis_keys): detections, session lifecycle, summaries.

Every state change is one Lua script, so it is atomic, and a detection is applied at most
once per frame identity (the session's `seen` set): redelivery never changes the totals.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from importlib import resources
from typing import Iterable, Mapping

import redis

from moodstream.emotions import EMOTIONS, sentiment
from moodstream.redis_keys import PROB_FIELDS, RedisKeys
from moodstream.reports import build_report
from moodstream.schemas import ControlEvent, DetectionMessage, MessageError

log = logging.getLogger(__name__)

_PROB_FIELDS_ARG = ",".join(PROB_FIELDS)

_START_SESSION = """
local fresh = redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
redis.call('HSETNX', KEYS[1], 'camera_id', ARGV[1])
redis.call('HSETNX', KEYS[1], 'status', 'open')
redis.call('HSETNX', KEYS[1], 'source', ARGV[4])
redis.call('HSETNX', KEYS[1], 'valence', ARGV[7])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'source', ARGV[4]) end
redis.call('ZADD', KEYS[2], 'NX', redis.call('HGET', KEYS[1], 'started_at'), ARGV[2])
if redis.call('HGET', KEYS[1], 'status') ~= 'closed' then
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
end
if fresh == 1 then
  -- A new session on this camera: the live EMA starts over from its first face.
  redis.call('HDEL', KEYS[4], 'sentiment', 'dominant', 'alert')
  redis.call('HSET', KEYS[4], 'session_id', ARGV[2], 'status', 'open', 'faces', 0, 'people', 0,
             'last_seen', ARGV[3])
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
end
if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
return fresh
"""

_END_SESSION = """
local status = redis.call('HGET', KEYS[1], 'status')
local frames = redis.call('HGET', KEYS[2], 'frames') or '0'
if status == 'closed' then
  return {status, frames, redis.call('HGET', KEYS[1], 'expected_frames') or ''}
end
redis.call('HSETNX', KEYS[1], 'camera_id', ARGV[1])
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
redis.call('ZADD', KEYS[4], 'NX', redis.call('HGET', KEYS[1], 'started_at'), ARGV[2])
redis.call('HSET', KEYS[1], 'status', 'ending', 'expected_frames', ARGV[4],
           'end_reason', ARGV[5], 'ended_at', ARGV[3], 'updated_at', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[2])
if tonumber(ARGV[7]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[7]) end
return {'ending', frames, ARGV[4]}
"""

_CLOSE_SESSION = """
local m = redis.call('HMGET', KEYS[1], 'status', 'ended_at', 'last_seen', 'end_reason')
redis.call('ZREM', KEYS[2], ARGV[1])
if not m[1] or m[1] == 'closed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'closed')
if not m[2] then redis.call('HSET', KEYS[1], 'ended_at', m[3] or ARGV[3]) end
if not m[4] or m[4] == '' then redis.call('HSET', KEYS[1], 'end_reason', ARGV[2]) end
if redis.call('HGET', KEYS[3], 'session_id') == ARGV[1] then
  redis.call('HSET', KEYS[3], 'status', 'closed')
end
return 1
"""


@dataclass(frozen=True)
class Applied:
    """What one detection did in Redis, and where its session stands afterwards."""

    message: DetectionMessage
    applied: bool  # False: a duplicate, nothing changed
    status: str
    frames: int
    expected_frames: int | None
    sentiment_sum: float

    @property
    def complete(self) -> bool:
        """Every frame announced by session_end has been applied."""
        return self.expected_frames is not None and self.frames >= self.expected_frames


def _expected(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None


def check_detection(msg: DetectionMessage) -> DetectionMessage:
    """Reject values Redis cannot add (NaN, inf, negative probabilities) before any write:
    a Lua script that fails half-way would leave half its increments behind."""
    numbers = [msg.offset_s, msg.capture_ts] + [v for f in msg.faces
                                                for p in (f.probs, f.smoothed) if p
                                                for v in p.values()]
    if not all(math.isfinite(x) for x in numbers):
        raise MessageError("non-finite number in detection")
    if msg.seq < 0 or msg.offset_s < 0 or msg.excluded_faces < 0:
        raise MessageError("negative seq, offset_s or excluded_faces")
    if any(v < 0 for f in msg.faces for p in (f.probs, f.smoothed) if p for v in p.values()):
        raise MessageError("negative probability")
    return msg


def face_probs(face) -> Mapping[str, float]:
    """The detector's per-track smoothed probabilities when it sent them, else the raw ones."""
    return face.smoothed if face.smoothed is not None else face.probs


class SessionStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys, valence: Mapping[str, float],
                 bucket_ttl_s: int, summary_ttl_s: int, ema_alpha: float):
        self.r, self.keys, self.valence = client, keys, dict(valence)
        self._valence_json = json.dumps(self.valence, sort_keys=True)
        self.bucket_ttl_s, self.summary_ttl_s, self.ema_alpha = bucket_ttl_s, summary_ttl_s, ema_alpha
        lua = resources.files("aggregator").joinpath("apply_detection.lua").read_text()
        self._apply = client.register_script(lua)
        self._start = client.register_script(_START_SESSION)
        self._end = client.register_script(_END_SESSION)
        self._close = client.register_script(_CLOSE_SESSION)

    # --- detections ---
    def detection_call(self, msg: DetectionMessage, now: float) -> tuple[list[str], list, float]:
        """KEYS and ARGV of the apply script for one message, and its sentiment sum."""
        k, s = self.keys, msg.session_id
        probs = [face_probs(f) for f in msg.faces]
        sentiment_sum = sum(sentiment(p, self.valence) for p in probs)
        prob_sums = [sum(p.get(e, 0.0) for p in probs) for e in EMOTIONS]
        tracks = sorted({str(f.track_id) for f in msg.faces if f.track_id is not None})
        second = math.floor(msg.offset_s)
        keys = [k.seen(s), k.meta(s), k.totals(s), k.buckets(s), k.tracks(s), k.bucket_tracks(s),
                k.bucket_track_ids(s), k.sessions, k.cameras, k.camera_live(msg.camera_id),
                k.active_sessions]
        numbers = [msg.seq, second, msg.offset_s, msg.capture_ts, now, len(msg.faces),
                   msg.excluded_faces, sentiment_sum, self.bucket_ttl_s, self.ema_alpha,
                   msg.capture_ts - msg.offset_s, *prob_sums]
        args = [msg.camera_id, s, ",".join(map(repr, numbers)), _PROB_FIELDS_ARG,
                ",".join(tracks), self._valence_json]
        return keys, args, sentiment_sum

    def apply_detections(self, messages: Iterable[DetectionMessage]) -> list[Applied]:
        """One round trip for the whole batch; each message is still its own atomic script."""
        messages, now = list(messages), time.time()
        if not messages:
            return []
        pipe = self.r.pipeline(transaction=False)
        sums = []
        for msg in messages:
            keys, args, sentiment_sum = self.detection_call(msg, now)
            self._apply(keys=keys, args=args, client=pipe)
            sums.append(sentiment_sum)
        results = pipe.execute()
        return [Applied(msg, bool(int(res[0])), res[1], int(res[2]), _expected(res[3]), total)
                for msg, res, total in zip(messages, results, sums)]

    # --- lifecycle ---
    def start_session(self, event: ControlEvent) -> bool:
        k, s = self.keys, event.session_id
        fresh = self._start(keys=[k.meta(s), k.sessions, k.active_sessions,
                                  k.camera_live(event.camera_id), k.cameras],
                            args=[event.camera_id, s, repr(event.ts), event.source,
                                  repr(time.time()), self.bucket_ttl_s, self._valence_json])
        return bool(fresh)

    def end_session(self, event: ControlEvent) -> tuple[str, int, int | None]:
        """Mark the session ending; returns (status, frames applied, expected frames)."""
        k, s = self.keys, event.session_id
        expected = "" if event.frames_published is None else str(event.frames_published)
        status, frames, expected_raw = self._end(
            keys=[k.meta(s), k.totals(s), k.active_sessions, k.sessions],
            args=[event.camera_id, s, repr(event.ts), expected, event.reason or "end",
                  repr(time.time()), self.bucket_ttl_s])
        return status, int(frames), _expected(expected_raw)

    def close_session(self, session_id: str, reason: str) -> str | None:
        """Mark the session closed (idempotent): its camera id if this call closed it, None if
        it was closed (or expired) already. The caller then writes the summary."""
        meta = self.keys.meta(session_id)
        camera_id = self.r.hget(meta, "camera_id") or ""
        live = self.keys.camera_live(camera_id) if camera_id else self.keys.camera_live("_")
        closed = self._close(keys=[meta, self.keys.active_sessions, live],
                             args=[session_id, reason, repr(time.time())])
        return camera_id if closed else None

    def write_summary(self, session_id: str) -> dict:
        """The summary is the session report as it stands at close time."""
        report = build_report(self.r, self.keys, session_id, self.valence)
        ttl = self.summary_ttl_s or None
        self.r.set(self.keys.summary(session_id), json.dumps(report), ex=ttl)
        return report

    def stale_sessions(self, idle_timeout_s: float, end_grace_s: float,
                       consuming_since: float = 0.0) -> list[tuple[str, str]]:
        """(session, reason) for open sessions idle too long and ending ones past their grace.

        Idle time counts only from `consuming_since`: while no aggregator was consuming
        (a crash, a restart, a group rebalance) silence proves nothing."""
        now = time.time()
        cutoff = now - min(idle_timeout_s, end_grace_s)
        if consuming_since > cutoff:
            return []
        candidates = self.r.zrangebyscore(self.keys.active_sessions, "-inf", cutoff,
                                          withscores=True)
        out = []
        for session_id, updated_at in candidates:
            status = self.r.hget(self.keys.meta(session_id), "status")
            idle_for = now - max(updated_at, consuming_since)
            if status == "ending" and idle_for >= end_grace_s:
                out.append((session_id, "end_grace"))
            elif status != "ending" and idle_for >= idle_timeout_s:
                out.append((session_id, "idle"))
        return out

    def prune_index(self, now: float | None = None) -> int:
        """Drop index entries whose session data and summary have both expired."""
        keep_s = max(self.bucket_ttl_s, self.summary_ttl_s)
        if not keep_s or not self.bucket_ttl_s or not self.summary_ttl_s:
            return 0
        now = time.time() if now is None else now
        return self.r.zremrangebyscore(self.keys.sessions, "-inf", now - keep_s)
