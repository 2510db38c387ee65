"""All Redis reads of the dashboard, over the data model in moodstream.redis_keys.

Callbacks never touch Redis themselves: they call DashboardData, which returns plain
dataclasses and dicts and turns any Redis failure into DataUnavailable, so the page can
say "Redis unreachable" and keep running. Every id is checked with valid_id before it
becomes part of a key.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import redis

from moodstream.emotions import EMOTIONS
from moodstream.redis_keys import RedisKeys, parse_buckets
from moodstream.reports import build_report
from moodstream.schemas import valid_id

# A buckets hash holds one field per (second, name); past this size a trend read fetches
# only the seconds in the window instead of the whole hash (a day-long live session).
FULL_READ_MAX_FIELDS = 20_000
_SESSION_META_FIELDS = ("camera_id", "status", "started_at", "ended_at", "last_seen", "source")
_TOTAL_FIELDS = ("frames", "faces", "sentiment_sum")


class DataUnavailable(RuntimeError):
    """Redis could not answer; str() is safe to show (no URL, no credentials)."""


@dataclass(frozen=True)
class CameraLive:
    camera_id: str
    session_id: str | None
    last_seen: float | None
    sentiment: float | None
    faces: int
    people: int
    dominant: str | None
    probs: dict[str, float] = field(default_factory=dict)
    alert: bool = False
    status: str = ""


@dataclass(frozen=True)
class SessionRow:
    session_id: str
    camera_id: str
    status: str
    started_at: float | None
    ended_at: float | None
    frames: int
    faces: int
    mean_sentiment: float | None


@dataclass(frozen=True)
class SessionFilter:
    camera_id: str | None = None
    start_ts: float | None = None  # started_at >= start_ts
    end_ts: float | None = None  # started_at < end_ts
    min_sentiment: float | None = None
    max_sentiment: float | None = None

    def accepts(self, row: SessionRow) -> bool:
        if self.camera_id and row.camera_id != self.camera_id:
            return False
        if self.min_sentiment is None and self.max_sentiment is None:
            return True
        if row.mean_sentiment is None:  # no faces: a sentiment filter cannot match it
            return False
        if self.min_sentiment is not None and row.mean_sentiment < self.min_sentiment:
            return False
        return self.max_sentiment is None or row.mean_sentiment <= self.max_sentiment


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int:
    number = _float(value)
    return int(number) if number is not None else 0


def utc(ts: float) -> datetime:
    """Epoch seconds -> naive UTC datetime (plotly shows naive datetimes as given)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).replace(tzinfo=None)


def _guarded(method: Callable) -> Callable:
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except redis.RedisError as exc:
            raise DataUnavailable(f"Redis unreachable ({type(exc).__name__})") from None
    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


class DashboardData:
    def __init__(self, client: redis.Redis, keys: RedisKeys,
                 clock: Callable[[], float] = time.time):
        self.client, self.keys, self.clock = client, keys, clock

    @_guarded
    def ping(self) -> bool:
        return bool(self.client.ping())

    @_guarded
    def camera_ids(self) -> list[str]:
        return [c for c in self.client.zrevrange(self.keys.cameras, 0, -1) if valid_id(c)]

    @_guarded
    def cameras(self) -> list[CameraLive]:
        """Live state of every known camera, most recently seen first."""
        ids = self.camera_ids()
        pipe = self.client.pipeline(transaction=False)
        for camera_id in ids:
            pipe.hgetall(self.keys.camera_live(camera_id))
        return [_camera_live(c, raw) for c, raw in zip(ids, pipe.execute())]

    @_guarded
    def open_alerts(self) -> dict[str, dict[str, Any]]:
        alerts = {}
        for camera_id, raw in self.client.hgetall(self.keys.open_alerts).items():
            try:
                alerts[camera_id] = json.loads(raw)
            except json.JSONDecodeError:
                alerts[camera_id] = {"message": "alert (unreadable record)"}
        return alerts

    @_guarded
    def trend(self, cameras: list[CameraLive], window_s: float) -> dict[str, list]:
        """Per-second sentiment of each camera's current session over the last window_s."""
        now = self.clock()
        series = {}
        for cam in cameras:
            if not cam.session_id or not valid_id(cam.session_id):
                continue
            if cam.last_seen is not None and cam.last_seen < now - window_s:
                continue  # camera silent for the whole window
            points = self._session_points(cam.session_id, now - window_s, now)
            if points:
                series[f"{cam.camera_id} · {cam.session_id}"] = points
        return series

    def _session_points(self, session_id: str, since: float, now: float) -> list:
        started = _float(self.client.hget(self.keys.meta(session_id), "started_at"))
        if started is None:
            return []
        buckets = self._buckets(session_id, int(since - started) - 1, int(now - started) + 1)
        if not buckets:
            return []
        points = []
        # Every second in the span, so seconds without faces show as gaps, not as joins.
        for t in range(min(buckets), max(buckets) + 1):
            ts = started + t
            if ts < since:
                continue
            b = buckets.get(t, {})
            faces = b.get("faces", 0.0)
            points.append((utc(ts), round(b["sentiment_sum"] / faces, 4)
                           if faces and "sentiment_sum" in b else None))
        return points

    def _buckets(self, session_id: str, t_lo: int, t_hi: int) -> dict[int, dict[str, float]]:
        key = self.keys.buckets(session_id)
        if self.client.hlen(key) <= FULL_READ_MAX_FIELDS:
            return parse_buckets(self.client.hgetall(key))
        fields = [f"{t}|{name}" for t in range(max(0, t_lo), t_hi + 1)
                  for name in ("faces", "sentiment_sum")]
        values = self.client.hmget(key, fields) if fields else []
        return parse_buckets({f: v for f, v in zip(fields, values) if v is not None})

    @_guarded
    def sessions(self, flt: SessionFilter = SessionFilter(), limit: int = 500) -> list[SessionRow]:
        """Sessions newest first, filtered by camera, start date and mean sentiment."""
        low = "-inf" if flt.start_ts is None else flt.start_ts
        high = "+inf" if flt.end_ts is None else f"({flt.end_ts}"  # "(" = exclusive
        # Read a few times the limit so filters that drop rows still fill the page.
        ids = [s for s in self.client.zrevrangebyscore(self.keys.sessions, high, low,
                                                       start=0, num=limit * 4) if valid_id(s)]
        rows = [row for row in self._session_rows(ids) if flt.accepts(row)]
        return rows[:limit]

    @_guarded
    def active_sessions(self, limit: int = 50) -> list[SessionRow]:
        """Sessions not closed yet (the aggregator's active index), most recently updated first."""
        ids = [s for s in self.client.zrevrange(self.keys.active_sessions, 0, limit - 1)
               if valid_id(s)]
        return [row for row in self._session_rows(ids) if row.status != "closed"]

    def _session_rows(self, ids: list[str]) -> list[SessionRow]:
        pipe = self.client.pipeline(transaction=False)
        for session_id in ids:
            pipe.hmget(self.keys.meta(session_id), _SESSION_META_FIELDS)
            pipe.hmget(self.keys.totals(session_id), _TOTAL_FIELDS)
        replies = pipe.execute()
        rows = []
        for index, session_id in enumerate(ids):
            meta = dict(zip(_SESSION_META_FIELDS, replies[2 * index]))
            totals = dict(zip(_TOTAL_FIELDS, replies[2 * index + 1]))
            if meta["camera_id"] is None:  # buckets and meta expired: fall back on the summary
                row = self._row_from_summary(session_id)
            else:
                row = _session_row(session_id, meta, totals)
            if row:
                rows.append(row)
        return rows

    def _row_from_summary(self, session_id: str) -> SessionRow | None:
        raw = self.client.get(self.keys.summary(session_id))
        if not raw:
            return None
        try:
            summary = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return SessionRow(session_id, str(summary.get("camera_id") or ""), "closed",
                          _iso_ts(summary.get("started_at")), _iso_ts(summary.get("ended_at")),
                          _int(summary.get("frames_processed")), _int(summary.get("faces_detected")),
                          _float(summary.get("mean_sentiment")))

    @_guarded
    def report(self, session_id: str) -> dict[str, Any]:
        """The full session report; raises ReportError / SessionNotFound for bad ids."""
        return build_report(self.client, self.keys, session_id)


def _camera_live(camera_id: str, raw: dict[str, str]) -> CameraLive:
    probs = {e: _float(raw.get(f"p:{e}")) or 0.0 for e in EMOTIONS}
    session_id = raw.get("session_id") or None
    return CameraLive(
        camera_id=camera_id, session_id=session_id if session_id and valid_id(session_id) else None,
        last_seen=_float(raw.get("last_seen")), sentiment=_float(raw.get("sentiment")),
        faces=_int(raw.get("faces")), people=_int(raw.get("people")),
        dominant=raw.get("dominant") or None, probs=probs,
        alert=raw.get("alert") == "open", status=raw.get("status", ""))


def _session_row(session_id: str, meta: dict, totals: dict) -> SessionRow:
    faces = _int(totals.get("faces"))
    sentiment_sum = _float(totals.get("sentiment_sum")) or 0.0
    return SessionRow(
        session_id=session_id, camera_id=meta["camera_id"], status=meta.get("status") or "open",
        started_at=_float(meta.get("started_at")),
        ended_at=_float(meta.get("ended_at")) or _float(meta.get("last_seen")),
        frames=_int(totals.get("frames")), faces=faces,
        mean_sentiment=round(sentiment_sum / faces, 4) if faces else None)


def _iso_ts(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None

