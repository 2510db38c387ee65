"""Writes the Redis data model (moodstream.redis_keys): detections, session lifecycle, summaries.

Every change of a session is one Lua script on the session's own keys, so it is atomic,
and a detection is applied at most once per frame identity (session, run, seq: a bit in
the run's seen bitmap): redelivery never changes the totals. Messages arrive validated
(moodstream.schemas); the scripts check every value again before their first write, and
reject (change nothing, say why) rather than fail half-way.

Redis Cluster runs a script only on keys of one slot, so a script never touches two
sessions, a session and its camera, or an index. What spans them is written after the
script, from its reply, in separate commands pipelined without a transaction: the
camera's live state (live.lua, only for a frame the script newly applied, so the seen
bitmap still guards it) and the session and camera indexes (idempotent: ZADD NX, ZADD GT,
ZREM; repeated for a duplicate too, so a crash between the two rounds heals on redelivery).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Callable, Iterable, Mapping

import redis

from aggregator.scripts import CLOSE_LIVE, CLOSE_SESSION, END_SESSION, START_SESSION
from moodstream.clients import run_pipeline, script_call
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
    code, status, handled, expected = reply[:4]
    if int(code) < 0:
        return Applied(msg, False, "", 0, None, sentiment_sum, rejected=str(status))
    return Applied(msg, int(code) == 1, status, int(handled), _expected(expected), sentiment_sum)


class SessionStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys, valence: Mapping[str, float],
                 bucket_ttl_s: int, summary_ttl_s: int, ema_alpha: float, min_people: int = 1):
        self.r, self.keys, self.valence = client, keys, dict(valence)
        self.min_people = min_people  # privacy floor; a camera file may ask for more
        self._valence_json = json.dumps(self.valence, sort_keys=True)
        self.bucket_ttl_s, self.summary_ttl_s, self.ema_alpha = bucket_ttl_s, summary_ttl_s, ema_alpha
        # The index outlives both what it points at; 0 (keep) when either is kept.
        self.index_ttl_s = max(bucket_ttl_s, summary_ttl_s) if bucket_ttl_s and summary_ttl_s else 0
        lua = resources.files("aggregator")
        self._apply = client.register_script(lua.joinpath("apply_detection.lua").read_text())
        self._live = client.register_script(lua.joinpath("live.lua").read_text())
        self._start = client.register_script(START_SESSION)
        self._end = client.register_script(END_SESSION)
        self._close = client.register_script(CLOSE_SESSION)
        self._close_live = client.register_script(CLOSE_LIVE)

    # --- detections ---
    def detection_call(self, msg: DetectionMessage, now: float) -> tuple[list[str], list, float]:
        """KEYS and ARGV of the apply script for one message, and its sentiment sum."""
        k, s = self.keys, msg.session_id
        probs = [face_probs(f) for f in msg.faces]
        sentiment_sum = sum(sentiment(p, self.valence) for p in probs)
        prob_sums = [sum(p.get(e, 0.0) for p in probs) for e in EMOTIONS]
        tracks = sorted({str(f.track_id) for f in msg.faces if f.track_id is not None})
        keys = [k.seen(s, msg.run_id), k.meta(s), k.totals(s), k.buckets(s), k.tracks(s),
                k.bucket_tracks(s), k.bucket_track_ids(s)]
        numbers = [msg.seq, math.floor(msg.offset_s), msg.offset_s, msg.capture_ts, now,
                   len(msg.faces), msg.excluded_faces, sentiment_sum, self.bucket_ttl_s,
                   msg.capture_ts - msg.offset_s, skipped_flag(msg), *prob_sums]
        args = [msg.camera_id, s, ",".join(map(repr, numbers)), _PROB_FIELDS_ARG,
                ",".join(tracks), self._valence_json, apply_limits(now)]
        return keys, args, sentiment_sum

    def apply_detections(self, messages: Iterable[DetectionMessage]) -> list[Applied]:
        """Two round trips for the whole batch: the apply script of every message (each its
        own atomic script), then live states and indexes from their replies.

        A message the script rejects comes back with `rejected` set; Redis failures raise."""
        messages, now = list(messages), time.time()
        if not messages:
            return []
        calls = [self.detection_call(msg, now) for msg in messages]
        replies = run_pipeline(self.r, [script_call(self._apply, keys, args)
                                        for keys, args, _ in calls])
        run_pipeline(self.r, self._after_apply(messages, calls, replies, now))
        return [_applied(msg, reply, total)
                for msg, reply, (_, _, total) in zip(messages, replies, calls)]

    def _after_apply(self, messages, calls, replies, now: float) -> list[Callable]:
        """The live-state scripts and index writes that follow the batch's apply scripts."""
        commands, started, active, cameras = [], {}, {}, {}
        for msg, (_, args, _), reply in zip(messages, calls, replies):
            code, status, _, _, started_at, people, updated_at = reply
            if int(code) < 0:
                continue  # rejected: nothing was written
            started[msg.session_id] = float(started_at)
            if status != "closed" and updated_at:  # a duplicate restores, never refreshes
                active[msg.session_id] = max(float(updated_at), active.get(msg.session_id, 0))
            if msg.skipped:
                continue  # handled, no faces: no live state
            cameras[msg.camera_id] = max(msg.capture_ts, cameras.get(msg.camera_id, msg.capture_ts))
            if int(code) == 1:  # once per frame: the seen bitmap said it is new
                commands.append(script_call(self._live, [self.keys.camera_live(msg.camera_id)],
                                            [*args, status, people, self.ema_alpha]))
        return commands + self._index_writes(started, active, cameras)

    def _index_writes(self, started: Mapping[str, float], active: Mapping[str, float],
                      cameras: Mapping[str, float]) -> list[Callable]:
        """Cross-session index updates, one key per command (any cluster slot): sessions
        by start time (NX: the first start wins), active sessions by last update and
        cameras by last seen (GT: never moved back); TTLs refreshed."""
        k, out = self.keys, []
        for key, members, options, ttl in ((k.sessions, started, {"nx": True}, self.index_ttl_s),
                                           (k.active_sessions, active, {"gt": True},
                                            self.bucket_ttl_s),
                                           (k.cameras, cameras, {"gt": True}, self.bucket_ttl_s)):
            if members:
                out.append(partial(_zadd, key, dict(members), options))
                if ttl:
                    out.append(partial(_expire, key, ttl))
        return out

    # --- lifecycle ---
    def start_session(self, event: ControlEvent) -> bool:
        """Open (or refresh) the session; MessageError when the script rejects the event."""
        k, s, now = self.keys, event.session_id, time.time()
        fresh, reason, started_at, status = self._start(
            keys=[k.meta(s)],
            args=[event.camera_id, s, repr(event.ts), event.source, repr(now),
                  self.bucket_ttl_s, self._valence_json, clock_limits(now)])
        if int(fresh) < 0:
            raise MessageError(f"session_start rejected: {reason}")
        active = {s: now} if status != "closed" else {}
        cameras = {event.camera_id: event.ts} if int(fresh) else {}
        commands = self._fresh_live(event) if int(fresh) else []
        commands += self._camera_privacy(event)
        run_pipeline(self.r, commands + self._index_writes({s: float(started_at)}, active, cameras))
        return bool(int(fresh))

    def _fresh_live(self, event: ControlEvent) -> list[Callable]:
        """A new session on the camera: its live EMA starts over from the first face."""
        live = self.keys.camera_live(event.camera_id)
        state = {"session_id": event.session_id, "status": "open", "faces": 0, "people": 0,
                 "last_seen": repr(event.ts)}
        out = [lambda p: p.hdel(live, "sentiment", "dominant", "alert"),
               lambda p: p.hset(live, mapping=state)]
        return out + ([partial(_expire, live, self.bucket_ttl_s)] if self.bucket_ttl_s else [])

    def _camera_privacy(self, event: ControlEvent) -> list[Callable]:
        """The camera's purpose, notice and min_people (moodstream.suppression) for the
        dashboard's camera card, the session's meta and so its reports."""
        notice = {True: "1", False: "0"}.get(event.notice, "")
        fields = {k: v for k, v in (("purpose", event.purpose), ("notice", notice)) if v}
        fields["min_people"] = str(max(self.min_people, event.min_people or 1))
        live, meta = self.keys.camera_live(event.camera_id), self.keys.meta(event.session_id)
        out = [lambda p: p.hset(live, mapping=fields), lambda p: p.hset(meta, mapping=fields)]
        return out + ([partial(_expire, live, self.bucket_ttl_s)] if self.bucket_ttl_s else [])

    def end_session(self, event: ControlEvent) -> tuple[str, int, int | None]:
        """Mark the session ending; returns (status, frames handled, expected frames)."""
        k, s, now = self.keys, event.session_id, time.time()
        expected = "" if event.frames_published is None else str(event.frames_published)
        status, handled, expected_raw, reason, started_at = self._end(
            keys=[k.meta(s), k.totals(s)],
            args=[event.camera_id, s, repr(event.ts), expected, event.reason or "end",
                  repr(now), self.bucket_ttl_s, clock_limits(now), MAX_SEQ + 1])
        if status == "rejected":
            raise MessageError(f"session_end rejected: {reason}")
        if status == "ending":
            run_pipeline(self.r, self._index_writes({s: float(started_at)}, {s: now}, {}))
        return status, int(handled), _expected(expected_raw)

    def close_session(self, session_id: str, reason: str) -> str | None:
        """Mark the session closed (idempotent): its camera id if this call closed it, None if
        it was closed (or expired) already. The caller then writes the summary."""
        closed, camera_id = self._close(keys=[self.keys.meta(session_id)],
                                        args=[session_id, reason, repr(time.time()),
                                              self.bucket_ttl_s])
        commands = [lambda p: p.zrem(self.keys.active_sessions, session_id)]
        if camera_id:
            commands.append(script_call(self._close_live, [self.keys.camera_live(camera_id)],
                                        [session_id, self.bucket_ttl_s]))
        run_pipeline(self.r, commands)
        return camera_id if int(closed) else None

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


def _zadd(key: str, members: dict, options: dict, pipe) -> None:
    pipe.zadd(key, members, **options)


def _expire(key: str, ttl_s: int, pipe) -> None:
    pipe.expire(key, ttl_s)
