"""The alerts page's Redis reads and writes: alert records, acknowledgements, thresholds.

Alert records are read as the aggregator writes them (moodstream.redis_keys): the open ones
from alerts:open, resolved ones from the alert lists of the most recent sessions. Reads go
through DashboardData.shared, so every viewer of one refresh interval shares one set of
Redis commands; filters apply afterwards. Everything read is checked (ids, numbers) before it
reaches a page, and everything written is bounded: an acknowledgement names an alert that
exists, its note is at most NOTE_MAX_CHARS of printable text, and thresholds pass
moodstream.alert_thresholds. Who may change thresholds is decided by the caller (the page
knows the signed-in user; dashboard.auth).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from dashboard.data import DashboardData, _float, _guarded, _timestamp
from moodstream.alert_thresholds import CameraThresholds, make_thresholds, parse_thresholds
from moodstream.schemas import valid_id

NOTE_MAX_CHARS = 500
RECENT_SESSIONS = 500  # resolved alerts are looked up in this many newest sessions
MAX_ROWS = 300
ALERT_ID = re.compile(r"[0-9a-f]{12}")  # the aggregator's uuid4().hex[:12]
ALERT_STATUSES = ("open", "resolved")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # keeps \n


class AlertInputError(ValueError):
    """A refused acknowledgement or threshold edit; str() is one line for the user."""


@dataclass(frozen=True)
class Ack:
    by: str
    at: float
    note: str


@dataclass(frozen=True)
class AlertRow:
    alert_id: str
    camera_id: str
    session_id: str
    status: str  # open | resolved
    opened_at: float | None
    resolved_at: float | None
    sentiment: float | None  # window mean when opened
    worst: float | None
    threshold: float | None
    resolved_because: str
    ack: Ack | None = None


def clean_note(note: Any) -> str:
    """The note as stored: printable text (newlines kept), trimmed, at most NOTE_MAX_CHARS."""
    text = _CONTROL.sub("", str(note or "")).strip()
    if len(text) > NOTE_MAX_CHARS:
        raise AlertInputError(f"the note is {len(text)} characters long: at most "
                              f"{NOTE_MAX_CHARS} please")
    return text


def _record(raw: Any) -> dict | None:
    """An alert record from Redis, None unless it has a valid id, camera and session."""
    try:
        record = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("id"), str)
            and ALERT_ID.fullmatch(record["id"]) and valid_id(record.get("camera_id"))
            and valid_id(record.get("session_id"))):
        return None
    return record


def _row(record: dict, ack: Ack | None) -> AlertRow:
    status = record.get("status") if record.get("status") in ALERT_STATUSES else "open"
    because = record.get("resolved_because")
    return AlertRow(record["id"], record["camera_id"], record["session_id"], status,
                    _timestamp(record.get("opened_at")), _timestamp(record.get("resolved_at")),
                    _float(record.get("sentiment")), _float(record.get("worst")),
                    _float(record.get("threshold")),
                    because if isinstance(because, str) and valid_id(because) else "", ack)


def _ack(raw: Any) -> Ack | None:
    try:
        data = json.loads(raw)
        return Ack(str(data["by"])[:128], _timestamp(data["at"]) or 0.0,
                   clean_note(data.get("note")))
    except (TypeError, ValueError, KeyError, RecursionError):
        return None


class AlertsData:
    def __init__(self, data: DashboardData, ack_ttl_s: int):
        self.data, self.r, self.keys = data, data.client, data.keys
        self.ack_ttl_s = ack_ttl_s

    # --- reads ---
    def alerts(self, camera_id: str | None = None, status: str | None = None) -> list[AlertRow]:
        """Open alerts first, then newest first; filtered by camera and status."""
        rows = self.data.shared("alerts-page", self._read_alerts)
        return [row for row in rows if (not camera_id or row.camera_id == camera_id)
                and (not status or row.status == status)][:MAX_ROWS]

    @_guarded
    def _read_alerts(self) -> list[AlertRow]:
        sessions = [s for s in self.r.zrevrange(self.keys.sessions, 0, RECENT_SESSIONS - 1)
                    if valid_id(s)]
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.keys.open_alerts)
        for session_id in sessions:
            pipe.lrange(self.keys.alerts(session_id), 0, -1)
        open_raw, *lists = pipe.execute()
        records: dict[str, dict] = {}
        for raw in (item for alerts in lists for item in alerts):
            record = _record(raw)
            if record:
                records[record["id"]] = record
        for raw in open_raw.values():  # the live copy of an open alert (its current worst)
            record = _record(raw)
            if record and records.get(record["id"], {}).get("status") != "resolved":
                records[record["id"]] = record
        acks = self._acks(list(records.values()))
        rows = [_row(record, acks.get(alert_id)) for alert_id, record in records.items()]
        return sorted(rows, key=lambda row: (row.status != "open", -(row.opened_at or 0)))

    def _acks(self, records: list[dict]) -> dict[str, Ack]:
        by_camera: dict[str, list[str]] = {}
        for record in records:
            by_camera.setdefault(record["camera_id"], []).append(record["id"])
        pipe = self.r.pipeline(transaction=False)
        for camera_id, ids in by_camera.items():
            pipe.hmget(self.keys.alert_acks(camera_id), ids)
        acks = {}
        for ids, values in zip(by_camera.values(), pipe.execute()):
            acks.update((alert_id, ack) for alert_id, ack in zip(ids, map(_ack, values)) if ack)
        return acks

    def thresholds(self, shared: bool = False) -> dict[str, CameraThresholds]:
        """Every camera's stored thresholds (invalid entries left out: defaults apply);
        shared: this refresh interval's answer, read once for every viewer."""
        return self.data.shared("alert-thresholds", self._read_thresholds) if shared else \
            self._read_thresholds()

    @_guarded
    def _read_thresholds(self) -> dict[str, CameraThresholds]:
        stored = self.r.hgetall(self.keys.alert_thresholds)
        parsed = {camera: parse_thresholds(raw) for camera, raw in stored.items()
                  if valid_id(camera)}
        return {camera: value for camera, value in sorted(parsed.items()) if value}

    # --- writes ---
    @_guarded
    def acknowledge(self, camera_id: Any, session_id: Any, alert_id: Any, user: str,
                    note: Any) -> Ack:
        """Store (replace) the acknowledgement of an existing alert of that camera."""
        if not (valid_id(camera_id) and valid_id(session_id) and isinstance(alert_id, str)
                and ALERT_ID.fullmatch(alert_id)):
            raise AlertInputError("no such alert")
        text = clean_note(note)
        if not self._alert_exists(camera_id, session_id, alert_id):
            raise AlertInputError("no such alert (it may have expired)")
        ack = Ack(str(user)[:128], self.data.clock(), text)
        key = self.keys.alert_acks(camera_id)
        pipe = self.r.pipeline(transaction=False)  # one key: one slot in a cluster too
        pipe.hset(key, alert_id, json.dumps({"alert_id": alert_id, "session_id": session_id,
                                              "by": ack.by, "at": ack.at, "note": ack.note}))
        if self.ack_ttl_s:
            pipe.expire(key, self.ack_ttl_s)
        pipe.execute()
        return ack

    def _alert_exists(self, camera_id: str, session_id: str, alert_id: str) -> bool:
        pipe = self.r.pipeline(transaction=False)
        pipe.hget(self.keys.open_alerts, camera_id)
        pipe.lrange(self.keys.alerts(session_id), 0, -1)
        open_raw, listed = pipe.execute()
        for record in map(_record, [open_raw, *listed]):
            if record and (record["id"], record["camera_id"], record["session_id"]) == (
                    alert_id, camera_id, session_id):
                return True
        return False

    @_guarded
    def set_thresholds(self, camera_id: Any, threshold: Any, resolve_threshold: Any,
                       min_duration_s: Any, user: str) -> CameraThresholds:
        if not valid_id(camera_id):
            raise AlertInputError("choose a camera")
        try:
            value = make_thresholds(threshold, resolve_threshold, min_duration_s, user,
                                    self.data.clock())
        except ValueError as exc:
            raise AlertInputError(str(exc)) from None
        self.r.hset(self.keys.alert_thresholds, camera_id, value.to_json())
        return value

    @_guarded
    def clear_thresholds(self, camera_id: Any) -> bool:
        """Back to the aggregator's defaults; False when the camera had none stored."""
        if not valid_id(camera_id):
            raise AlertInputError("choose a camera")
        return bool(self.r.hdel(self.keys.alert_thresholds, camera_id))
