"""Writes the Redis data model (moodstream.redis_keys): detections, session lifecycle, summaries.

Every state change is one Lua script, so it is atomic, and a detection is applied at most
once per frame identity (session, run, seq: a bit in the run's seen bitmap): redelivery
never changes the totals. Messages arrive validated (moodstream.schemas); the scripts
check every value again before their first write, and reject (change nothing, say why)
rather than fail half-way.
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

from aggregator.scripts import CLOSE_SESSION, END_SESSION, START_SESSION
from moodstream.emotions import EMOTIONS, sentiment
from moodstream.redis_keys import PROB_FIELDS, RedisKeys
from moodstream.reports import build_report
from moodstream.schemas import (MAX_EXCLUDED_FACES, MAX_FACES, MAX_OFFSET_S, MAX_SEQ,
                                MAX_TRACK_ID, PROB_SUM_TOLERANCE, SKIPPED_STALE,
                                TS_MAX_AHEAD_S, TS_MIN, ControlEvent, DetectionMessage,
                                MessageError)

log = logging.getLogger(__name__)

_PROB_FIELDS_ARG = ",".join(PROB_FIELDS)


def apply_limits(now: float) -> str:
    """The schema bounds, as apply_detection.lua's limits argument."""
    return ",".join(map(repr, (MAX_SEQ, MAX_OFFSET_S, MAX_FACES, MAX_EXCLUDED_FACES, TS_MIN,
                               now + TS_MAX_AHEAD_S, MAX_TRACK_ID, PROB_SUM_TOLERANCE)))


def clock_limits(now: float) -> str:
    """The timestamp window, as the lifecycle scripts' limits argument."""
    return f"{TS_MIN!r},{now + TS_MAX_AHEAD_S!r}"


@dataclass(frozen=True)
class Applied:
    """What one detection did in Redis, and where its session stands afterwards."""

    message: DetectionMessage
    applied: bool  # False: a duplicate or rejected, nothing changed
    status: str
    handled: int  # frames of the session applied so far, analysed + skipped
    expected_frames: int | None
    sentiment_sum: float
    rejected: str = ""  # why the apply script refused the message (nothing changed)

    @property
    def complete(self) -> bool:
        """Every frame announced by session_end has been handled."""
        return self.expected_frames is not None and self.handled >= self.expected_frames


def _expected(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None


def skipped_flag(msg: DetectionMessage) -> int:
    """apply_detection.lua's skipped argument: 0 analysed, 1 skipped (dead-lettered), 2
    skipped as stale (a live frame the detector read too late: also counted in the
    session meta's stale_frames)."""
    if not msg.skipped:
        return 0
    return 2 if msg.skipped == SKIPPED_STALE else 1


def face_probs(face) -> Mapping[str, float]:
    """The detector's per-track smoothed probabilities when it sent them, else the raw ones."""
    return face.smoothed if face.smoothed is not None else face.probs


def _applied(msg: DetectionMessage, reply: list, sentiment_sum: float) -> Applied:
    code, status, handled, expected = reply
    if int(code) < 0:
        return Applied(msg, False, "", 0, None, sentiment_sum, rejected=str(status))
    return Applied(msg, int(code) == 1, status, int(handled), _expected(expected), sentiment_sum)


class SessionStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys, valence: Mapping[str, float],
                 bucket_ttl_s: int, summary_ttl_s: int, ema_alpha: float):
        self.r, self.keys, self.valence = client, keys, dict(valence)
        self._valence_json = json.dumps(self.valence, sort_keys=True)
        self.bucket_ttl_s, self.summary_ttl_s, self.ema_alpha = bucket_ttl_s, summary_ttl_s, ema_alpha
        # The index outlives both what it points at; 0 (keep) when either is kept.
        self.index_ttl_s = max(bucket_ttl_s, summary_ttl_s) if bucket_ttl_s and summary_ttl_s else 0
        lua = resources.files("aggregator").joinpath("apply_detection.lua").read_text()
        self._apply = client.register_script(lua)
        self._start = client.register_script(START_SESSION)
        self._end = client.register_script(END_SESSION)
        self._close = client.register_script(CLOSE_SESSION)

    # --- detections ---
    def detection_call(self, msg: DetectionMessage, now: float) -> tuple[list[str], list, float]:
        """KEYS and ARGV of the apply script for one message, and its sentiment sum."""
        k, s = self.keys, msg.session_id
        probs = [face_probs(f) for f in msg.faces]
        sentiment_sum = sum(sentiment(p, self.valence) for p in probs)
        prob_sums = [sum(p.get(e, 0.0) for p in probs) for e in EMOTIONS]
        tracks = sorted({str(f.track_id) for f in msg.faces if f.track_id is not None})
        keys = [k.seen(s, msg.run_id), k.meta(s), k.totals(s), k.buckets(s), k.tracks(s),
                k.bucket_tracks(s), k.bucket_track_ids(s), k.sessions, k.cameras,
                k.camera_live(msg.camera_id), k.active_sessions]
        numbers = [msg.seq, math.floor(msg.offset_s), msg.offset_s, msg.capture_ts, now,
                   len(msg.faces), msg.excluded_faces, sentiment_sum, self.bucket_ttl_s,
                   self.ema_alpha, msg.capture_ts - msg.offset_s, skipped_flag(msg),
                   self.index_ttl_s, *prob_sums]
        args = [msg.camera_id, s, ",".join(map(repr, numbers)), _PROB_FIELDS_ARG,
                ",".join(tracks), self._valence_json, apply_limits(now)]
        return keys, args, sentiment_sum

    def apply_detections(self, messages: Iterable[DetectionMessage]) -> list[Applied]:
        """One round trip for the whole batch; each message is still its own atomic script.

        A message the script rejects comes back with `rejected` set; Redis failures raise."""
        messages, now = list(messages), time.time()
        if not messages:
            return []
        pipe = self.r.pipeline(transaction=False)
        sums = []
        for msg in messages:
            keys, args, sentiment_sum = self.detection_call(msg, now)
            self._apply(keys=keys, args=args, client=pipe)
            sums.append(sentiment_sum)
        return [_applied(msg, reply, total)
                for msg, reply, total in zip(messages, pipe.execute(), sums)]

    # --- lifecycle ---
    def start_session(self, event: ControlEvent) -> bool:
        """Open (or refresh) the session; MessageError when the script rejects the event."""
        k, s, now = self.keys, event.session_id, time.time()
        fresh, reason = self._start(
            keys=[k.meta(s), k.sessions, k.active_sessions, k.camera_live(event.camera_id),
                  k.cameras],
            args=[event.camera_id, s, repr(event.ts), event.source, repr(now),
                  self.bucket_ttl_s, self._valence_json, clock_limits(now), self.index_ttl_s])
        if int(fresh) < 0:
            raise MessageError(f"session_start rejected: {reason}")
        return bool(int(fresh))

    def end_session(self, event: ControlEvent) -> tuple[str, int, int | None]:
        """Mark the session ending; returns (status, frames handled, expected frames)."""
        k, s, now = self.keys, event.session_id, time.time()
        expected = "" if event.frames_published is None else str(event.frames_published)
        status, handled, expected_raw, reason = self._end(
            keys=[k.meta(s), k.totals(s), k.active_sessions, k.sessions],
            args=[event.camera_id, s, repr(event.ts), expected, event.reason or "end",
                  repr(now), self.bucket_ttl_s, clock_limits(now), MAX_SEQ + 1,
                  self.index_ttl_s])
        if status == "rejected":
            raise MessageError(f"session_end rejected: {reason}")
        return status, int(handled), _expected(expected_raw)

    def close_session(self, session_id: str, reason: str) -> str | None:
        """Mark the session closed (idempotent): its camera id if this call closed it, None if
        it was closed (or expired) already. The caller then writes the summary."""
        meta = self.keys.meta(session_id)
        camera_id = self.r.hget(meta, "camera_id") or ""
        live = self.keys.camera_live(camera_id) if camera_id else self.keys.camera_live("_")
        closed = self._close(keys=[meta, self.keys.active_sessions, live],
                             args=[session_id, reason, repr(time.time()), self.bucket_ttl_s])
        return camera_id if closed else None

    def write_summary(self, session_id: str) -> dict:
        """The summary is the session report as it stands at close time."""
        report = build_report(self.r, self.keys, session_id, self.valence)
        pipe = self.r.pipeline(transaction=False)
        pipe.set(self.keys.summary(session_id), json.dumps(report), ex=self.summary_ttl_s or None)
        if self.index_ttl_s:  # the index must outlive the summary it points at
            pipe.expire(self.keys.sessions, self.index_ttl_s)
        pipe.execute()
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
        """Drop index members past retention: sessions whose data and summary have both
        expired, cameras not seen for the bucket TTL (their live hash expired with it)."""
        now = time.time() if now is None else now
        pruned = 0
        if self.bucket_ttl_s:
            pruned += self.r.zremrangebyscore(self.keys.cameras, "-inf", now - self.bucket_ttl_s)
        if self.index_ttl_s:
            pruned += self.r.zremrangebyscore(self.keys.sessions, "-inf", now - self.index_ttl_s)
        return pruned
