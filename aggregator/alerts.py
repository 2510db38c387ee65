"""Per-camera negative-sentiment alerts with hysteresis, stored in Redis.

Time is session time (offset_s: video time for files, wall time for live cameras), so a
recorded file raises the same alerts however fast it is processed. Only frames that were
newly applied feed the monitor: a redelivered message never moves an alert.

Privacy (moodstream.suppression): a window that saw fewer distinct people (track ids) than
the session's `min_people` has no mean, like one with too few faces: no alert opens on it,
and none records its sentiment, so an alert never tells how one or two people felt.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

import redis

from moodstream.redis_keys import RedisKeys
from moodstream.schemas import valid_id
from moodstream.suppression import min_people_of, too_few

log = logging.getLogger(__name__)
FLOOR_REFRESH_S = 5.0
MAX_FLOORS = 4096


@dataclass(frozen=True)
class AlertRule:
    window_s: float = 10.0
    threshold: float = 0.35  # opens when the window mean sentiment <= -threshold ...
    min_duration_s: float = 5.0  # ... continuously for this long
    resolve_threshold: float = 0.15  # resolves when the mean > -resolve_threshold ...
    clear_s: float = 5.0  # ... continuously for this long
    cooldown_s: float = 30.0  # no new alert on the camera this long after one resolves
    min_faces: int = 3  # fewer faces in the window: too little evidence, counts as clear


@dataclass
class _CameraState:
    session_id: str
    window: deque = field(default_factory=deque)  # (offset_s, faces, sentiment_sum, tracks)
    faces: int = 0
    sentiment_sum: float = 0.0
    tracks: Counter = field(default_factory=Counter)  # track id -> its frames in the window
    min_people: int = 1  # the session's floor (moodstream.suppression)
    breach_since: float | None = None
    clear_since: float | None = None
    cooldown_until: float = float("-inf")
    alert: dict | None = None  # the open alert record
    last_ts: float = float("-inf")  # newest capture_ts seen
    observed_at: float = 0.0  # monitor clock when a frame last reached this state

    def push(self, offset_s: float, faces: int, sentiment_sum: float, window_s: float,
             tracks: tuple = ()) -> None:
        self.window.append((offset_s, faces, sentiment_sum, tracks))
        self.faces += faces
        self.sentiment_sum += sentiment_sum
        self.tracks.update(tracks)
        while self.window and self.window[0][0] <= offset_s - window_s:
            _, old_faces, old_sum, old_tracks = self.window.popleft()
            self.faces -= old_faces
            self.sentiment_sum -= old_sum
            self.tracks.subtract(old_tracks)
            for track in old_tracks:
                if self.tracks[track] <= 0:
                    del self.tracks[track]

    def mean(self, min_faces: int) -> float | None:
        """The window's mean sentiment; None with too few faces, or fewer distinct people
        than min_people (the sentiment of so few is not shown, so no alert tells it)."""
        if self.faces < min_faces or too_few(len(self.tracks), self.min_people):
            return None
        return self.sentiment_sum / self.faces


@dataclass(frozen=True)
class AlertEvent:
    kind: str  # "opened" | "resolved"
    record: dict


class AlertMonitor:
    """The alert state machine for every camera; pure (no I/O), fed frame by frame.

    State is kept per camera while frames come: forget_idle() drops the state of cameras
    that went quiet, so a fleet that changes over time does not grow the dict forever.
    `rules` gives a camera's rule (aggregator.thresholds: an admin's per-camera thresholds,
    re-read every few seconds); without it every camera follows `rule`."""

    def __init__(self, rule: AlertRule, clock: Callable[[], float] = time.monotonic,
                 rules: Callable[[str], AlertRule] | None = None):
        self.rule, self.clock = rule, clock
        self.rule_for = rules or (lambda _camera_id: self.rule)
        self.cameras: dict[str, _CameraState] = {}

    def restore(self, record: dict) -> None:
        """Re-adopt an alert left open by a previous run (from the alerts:open hash)."""
        state = _CameraState(record["session_id"], observed_at=self.clock())
        state.alert = record
        self.cameras[record["camera_id"]] = state

    def forget(self, camera_id: str, session_id: str) -> None:
        """Drop the camera's state if it belongs to that session (its alert was resolved
        elsewhere, e.g. pruned from alerts:open as stale)."""
        state = self.cameras.get(camera_id)
        if state is not None and state.session_id == session_id:
            del self.cameras[camera_id]

    def forget_idle(self, idle_s: float, ts: float) -> list[AlertEvent]:
        """Drop the state of cameras without a frame for idle_s (monitor clock); an alert
        still open on one resolves (camera_idle)."""
        cutoff = self.clock() - idle_s
        events = []
        for camera_id in [c for c, s in self.cameras.items() if s.observed_at < cutoff]:
            state = self.cameras.pop(camera_id)
            if state.alert is not None:
                last_offset = state.window[-1][0] if state.window else state.alert["opened_offset_s"]
                events.append(self._resolve(state, ts, last_offset, "camera_idle", self.rule))
        return events

    def observe(self, camera_id: str, session_id: str, offset_s: float, faces: int,
                sentiment_sum: float, ts: float, tracks: Iterable[int | None] = (),
                min_people: int = 1) -> list[AlertEvent]:
        """One applied frame: its faces, their sentiment sum and track ids, and the
        session's min_people."""
        events: list[AlertEvent] = []
        state = self.cameras.get(camera_id)
        if state is not None and state.session_id != session_id and ts < state.last_ts:
            return events  # a straggler of an earlier session: it cannot move the alert
        rule = self.rule_for(camera_id)
        if state is None or state.session_id != session_id:
            if state is not None and state.alert is not None:  # the session changed under it
                events.append(self._resolve(state, ts, offset_s, "session_changed", rule))
            state = self.cameras[camera_id] = _CameraState(session_id)
        state.last_ts = max(state.last_ts, ts)
        state.observed_at = self.clock()
        state.min_people = min_people
        state.push(offset_s, faces, sentiment_sum, rule.window_s,
                   tuple(t for t in tracks if t is not None))
        mean = state.mean(rule.min_faces)
        if state.alert is None:
            event = self._maybe_open(state, camera_id, mean, offset_s, ts, rule)
        else:
            event = self._maybe_resolve(state, mean, offset_s, ts, rule)
        if event:
            events.append(event)
        return events

    def end_session(self, camera_id: str, session_id: str, ts: float) -> list[AlertEvent]:
        """The session closed: an alert still open on it resolves, its state goes."""
        state = self.cameras.get(camera_id)
        if state is None or state.session_id != session_id:
            return []
        del self.cameras[camera_id]
        if state.alert is None:
            return []
        last_offset = state.window[-1][0] if state.window else state.alert["opened_offset_s"]
        return [self._resolve(state, ts, last_offset, "session_closed", self.rule)]

    def _maybe_open(self, state, camera_id, mean, offset_s, ts, rule) -> AlertEvent | None:
        if mean is None or mean > -rule.threshold:
            state.breach_since = None
            return None
        if state.breach_since is None:
            state.breach_since = offset_s
        lasted = offset_s - state.breach_since
        if lasted < rule.min_duration_s or offset_s < state.cooldown_until:
            return None
        state.alert = {
            "id": uuid.uuid4().hex[:12], "camera_id": camera_id, "session_id": state.session_id,
            "status": "open", "opened_at": ts, "opened_offset_s": offset_s,
            "resolved_at": None, "resolved_offset_s": None, "threshold": -rule.threshold,
            "window_s": rule.window_s, "sentiment": round(mean, 4), "worst": round(mean, 4),
        }
        state.breach_since = state.clear_since = None
        # The same dict as the state's: the store adds its list index, which resolve needs.
        return AlertEvent("opened", state.alert)

    def _maybe_resolve(self, state, mean, offset_s, ts, rule) -> AlertEvent | None:
        if mean is not None:
            state.alert["worst"] = round(min(state.alert["worst"], mean), 4)
        if mean is not None and mean <= -rule.resolve_threshold:
            state.clear_since = None
            return None
        if state.clear_since is None:
            state.clear_since = offset_s
        if offset_s - state.clear_since < rule.clear_s:
            return None
        return self._resolve(state, ts, offset_s, "cleared", rule)

    def _resolve(self, state, ts, offset_s, why, rule: AlertRule) -> AlertEvent:
        record = dict(state.alert, status="resolved", resolved_at=ts,
                      resolved_offset_s=offset_s, resolved_because=why)
        state.alert, state.clear_since = None, None
        state.cooldown_until = offset_s + rule.cooldown_s
        return AlertEvent("resolved", record)


class AlertStore:
    """Writes alert records: the session's list, alerts:open, the camera live `alert` field."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, ttl_s: int,
                 notify: Callable[[AlertEvent], None] | None = None):
        self.r, self.keys, self.ttl_s, self.notify = client, keys, ttl_s, notify
        self._floors: dict[str, tuple[int, float]] = {}  # session -> (min_people, read at)

    def min_people(self, session_id: str, now: float | None = None) -> int:
        """The session's min_people (its meta, as session_start recorded it), re-read at
        most every FLOOR_REFRESH_S: a frame may come before its session_start."""
        now = time.monotonic() if now is None else now
        cached = self._floors.get(session_id)
        if cached is not None and now - cached[1] < FLOOR_REFRESH_S:
            return cached[0]
        floor = min_people_of({"min_people": self.r.hget(self.keys.meta(session_id),
                                                          "min_people")})
        if len(self._floors) >= MAX_FLOORS:
            self._floors.clear()  # sessions come and go: start over rather than grow
        self._floors[session_id] = (floor, now)
        return floor

    def load_open(self) -> list[dict]:
        """Alerts left open by a previous run; an unreadable entry is dropped, not fatal."""
        records = []
        for camera, raw in self.r.hgetall(self.keys.open_alerts).items():
            record = _alert_record(raw)
            if record is None:
                log.warning("dropping unreadable open alert of camera %r", camera[:40])
                self.r.hdel(self.keys.open_alerts, camera)
            else:
                records.append(record)
        return records

    def prune_stale(self) -> list[dict]:
        """Remove open alerts whose session is closed or gone (and unreadable entries);
        returns the removed records."""
        records = {camera: _alert_record(raw)
                   for camera, raw in self.r.hgetall(self.keys.open_alerts).items()}
        readable = {camera: record for camera, record in records.items() if record}
        pipe = self.r.pipeline(transaction=False)
        for record in readable.values():
            pipe.hget(self.keys.meta(record["session_id"]), "status")
        stale = {camera: record for (camera, record), status
                 in zip(readable.items(), pipe.execute()) if status in (None, "closed")}
        drop = [camera for camera, record in records.items() if not record] + list(stale)
        if drop:
            self.r.hdel(self.keys.open_alerts, *drop)
        return list(stale.values())

    def write(self, event: AlertEvent) -> dict:
        record, k = event.record, self.keys
        camera, session = record["camera_id"], record["session_id"]
        if event.kind == "opened":
            # Written on the monitor's own record, so the later resolve can LSET it in place.
            record["index"] = self.r.rpush(k.alerts(session), json.dumps(record)) - 1
            # No MULTI: the keys span slots on a Redis Cluster (session, index, camera).
            pipe = self.r.pipeline(transaction=False)
            pipe.lset(k.alerts(session), record["index"], json.dumps(record))
            pipe.hset(k.open_alerts, camera, json.dumps(record))
            pipe.hset(k.camera_live(camera), "alert", "open")
        else:
            pipe = self.r.pipeline(transaction=False)
            if "index" in record and self.r.llen(k.alerts(session)) > record["index"]:
                pipe.lset(k.alerts(session), record["index"], json.dumps(record))
            else:  # the list expired meanwhile: keep the resolved record anyway
                pipe.rpush(k.alerts(session), json.dumps(record))
            pipe.hdel(k.open_alerts, camera)
            pipe.hset(k.camera_live(camera), "alert", "")
        if self.ttl_s:
            for key in (k.alerts(session), k.open_alerts, k.camera_live(camera)):
                pipe.expire(key, self.ttl_s)
        pipe.execute()
        log.warning("alert %s on camera %s (session %s): window sentiment %s",
                    event.kind, camera, session, record.get("worst"))
        if self.notify:
            self.notify(AlertEvent(event.kind, dict(record)))
        return record


def _alert_record(raw: str) -> dict | None:
    """An alerts:open value as a record, None when it is not one (never raises)."""
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    ok = (isinstance(record, dict) and valid_id(record.get("camera_id"))
          and valid_id(record.get("session_id")))
    return record if ok else None
