"""Per-camera negative-sentiment alerts with hysteresis, stored in Redis.

Time is session time (offset_s: video time for files, wall time for live cameras), so a
recorded file raises the same alerts however fast it is processed. Only frames that were
newly applied feed the monitor: a redelivered message never moves an alert.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import redis

from moodstream.redis_keys import RedisKeys

log = logging.getLogger(__name__)


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
    window: deque = field(default_factory=deque)  # (offset_s, faces, sentiment_sum)
    faces: int = 0
    sentiment_sum: float = 0.0
    breach_since: float | None = None
    clear_since: float | None = None
    cooldown_until: float = float("-inf")
    alert: dict | None = None  # the open alert record
    last_ts: float = float("-inf")  # newest capture_ts seen

    def push(self, offset_s: float, faces: int, sentiment_sum: float, window_s: float) -> None:
        self.window.append((offset_s, faces, sentiment_sum))
        self.faces += faces
        self.sentiment_sum += sentiment_sum
        while self.window and self.window[0][0] <= offset_s - window_s:
            _, old_faces, old_sum = self.window.popleft()
            self.faces -= old_faces
            self.sentiment_sum -= old_sum

    def mean(self, min_faces: int) -> float | None:
        return self.sentiment_sum / self.faces if self.faces >= min_faces else None


@dataclass(frozen=True)
class AlertEvent:
    kind: str  # "opened" | "resolved"
    record: dict


class AlertMonitor:
    """The alert state machine for every camera; pure (no I/O), fed frame by frame."""

    def __init__(self, rule: AlertRule):
        self.rule = rule
        self.cameras: dict[str, _CameraState] = {}

    def restore(self, record: dict) -> None:
        """Re-adopt an alert left open by a previous run (from the alerts:open hash)."""
        state = _CameraState(record["session_id"])
        state.alert = record
        self.cameras[record["camera_id"]] = state

    def observe(self, camera_id: str, session_id: str, offset_s: float, faces: int,
                sentiment_sum: float, ts: float) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        state = self.cameras.get(camera_id)
        if state is not None and state.session_id != session_id and ts < state.last_ts:
            return events  # a straggler of an earlier session: it cannot move the alert
        if state is None or state.session_id != session_id:
            if state is not None and state.alert is not None:  # the session changed under it
                events.append(self._resolve(state, ts, offset_s, "session_changed"))
            state = self.cameras[camera_id] = _CameraState(session_id)
        state.last_ts = max(state.last_ts, ts)
        state.push(offset_s, faces, sentiment_sum, self.rule.window_s)
        mean = state.mean(self.rule.min_faces)
        if state.alert is None:
            event = self._maybe_open(state, camera_id, mean, offset_s, ts)
        else:
            event = self._maybe_resolve(state, mean, offset_s, ts)
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
        return [self._resolve(state, ts, last_offset, "session_closed")]

    def _maybe_open(self, state, camera_id, mean, offset_s, ts) -> AlertEvent | None:
        if mean is None or mean > -self.rule.threshold:
            state.breach_since = None
            return None
        if state.breach_since is None:
            state.breach_since = offset_s
        lasted = offset_s - state.breach_since
        if lasted < self.rule.min_duration_s or offset_s < state.cooldown_until:
            return None
        state.alert = {
            "id": uuid.uuid4().hex[:12], "camera_id": camera_id, "session_id": state.session_id,
            "status": "open", "opened_at": ts, "opened_offset_s": offset_s,
            "resolved_at": None, "resolved_offset_s": None, "threshold": -self.rule.threshold,
            "window_s": self.rule.window_s, "sentiment": round(mean, 4), "worst": round(mean, 4),
        }
        state.breach_since = state.clear_since = None
        # The same dict as the state's: the store adds its list index, which resolve needs.
        return AlertEvent("opened", state.alert)

    def _maybe_resolve(self, state, mean, offset_s, ts) -> AlertEvent | None:
        if mean is not None:
            state.alert["worst"] = round(min(state.alert["worst"], mean), 4)
        if mean is not None and mean <= -self.rule.resolve_threshold:
            state.clear_since = None
            return None
        if state.clear_since is None:
            state.clear_since = offset_s
        if offset_s - state.clear_since < self.rule.clear_s:
            return None
        return self._resolve(state, ts, offset_s, "cleared")

    def _resolve(self, state, ts, offset_s, why) -> AlertEvent:
        record = dict(state.alert, status="resolved", resolved_at=ts,
                      resolved_offset_s=offset_s, resolved_because=why)
        state.alert, state.clear_since = None, None
        state.cooldown_until = offset_s + self.rule.cooldown_s
        return AlertEvent("resolved", record)


class AlertStore:
    """Writes alert records: the session's list, alerts:open, the camera live `alert` field."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, ttl_s: int,
                 notify: Callable[[AlertEvent], None] | None = None):
        self.r, self.keys, self.ttl_s, self.notify = client, keys, ttl_s, notify

    def load_open(self) -> list[dict]:
        return [json.loads(v) for v in self.r.hgetall(self.keys.open_alerts).values()]

    def write(self, event: AlertEvent) -> dict:
        record, k = event.record, self.keys
        camera, session = record["camera_id"], record["session_id"]
        if event.kind == "opened":
            # Written on the monitor's own record, so the later resolve can LSET it in place.
            record["index"] = self.r.rpush(k.alerts(session), json.dumps(record)) - 1
            pipe = self.r.pipeline()
            pipe.lset(k.alerts(session), record["index"], json.dumps(record))
            pipe.hset(k.open_alerts, camera, json.dumps(record))
            pipe.hset(k.camera_live(camera), "alert", "open")
        else:
            pipe = self.r.pipeline()
            if "index" in record and self.r.llen(k.alerts(session)) > record["index"]:
                pipe.lset(k.alerts(session), record["index"], json.dumps(record))
            else:  # the list expired meanwhile: keep the resolved record anyway
                pipe.rpush(k.alerts(session), json.dumps(record))
            pipe.hdel(k.open_alerts, camera)
            pipe.hset(k.camera_live(camera), "alert", "")
        if self.ttl_s:
            pipe.expire(k.alerts(session), self.ttl_s)
        pipe.execute()
        log.warning("alert %s on camera %s (session %s): window sentiment %s",
                    event.kind, camera, session, record.get("worst"))
        if self.notify:
            self.notify(AlertEvent(event.kind, dict(record)))
        return record
