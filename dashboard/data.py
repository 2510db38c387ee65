"""All Redis reads of the dashboard, over the data model in moodstream.redis_keys.

Callbacks never touch Redis themselves: they call DashboardData, which returns plain
dataclasses and dicts and turns any Redis failure into DataUnavailable, so the page can
say "Redis unreachable" and keep running. Every id is checked with valid_id before it
becomes part of a key.

One shared, cached reader per refresh interval: with cache_s > 0 (the dashboard passes its
refresh period), live() and shared() answer every viewer's callbacks of one interval tick
(floor(clock / cache_s)) from one set of Redis reads; concurrent callers of the same tick
wait for the one read instead of issuing their own. A failed read is not cached. Pages
that read per query (a sessions page, one session's report) name their read after the query;
the cache keeps at most SHARED_NAMES names, dropping those of past ticks first.
"""

from __future__ import annotations

import collections
import functools
import json
import math
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import redis

from dashboard.live_report import LiveReports
from dashboard.settled_seconds import SettledSeconds
from moodstream.clients import REDIS_ERRORS, run_pipeline, script_call
from moodstream.emotions import EMOTIONS
from moodstream.redis_keys import RedisKeys
from moodstream.reports import build_report
from moodstream.schemas import MAX_OFFSET_S, TS_LIMIT, valid_id
from moodstream.suppression import min_people_of

# The longest trend the page asks for (layout.TREND_WINDOWS), with room to spare: the
# script refuses a longer span, so no value in Redis can make it loop for long.
MAX_TREND_SECONDS = 3600

# Read-only: mean sentiment and faces of each second t in [ARGV[1], ARGV[2]] of one buckets
# hash, packed as "0.1234:2,,-0.5:3" ("" = a second without faces). The loop's range comes from
# Redis data (a camera's last offset_s), so it is checked first: whole numbers in
# [0, ARGV[4]] at most ARGV[3] seconds apart (a double as large as 1e17 would otherwise
# never step past itself: t + 1 == t, an endless loop that blocks Redis). Anything else
# returns "". A second with fewer distinct people (KEYS[2], bucket_tracks) than ARGV[5]
# (min_people, moodstream.suppression) keeps its faces but not its sentiment: ":2".
TREND_SCRIPT = """
local lo, hi = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_span, max_t = tonumber(ARGV[3]), tonumber(ARGV[4])
local min_people = tonumber(ARGV[5]) or 1
if not (lo and hi and lo >= 0 and hi <= max_t and hi >= lo and hi - lo < max_span
        and math.floor(lo) == lo and math.floor(hi) == hi) then
  return ''
end
local out = {}
for t = lo, hi do
  local v = redis.call('HMGET', KEYS[1], t .. '|faces', t .. '|sentiment_sum')
  local faces, total = tonumber(v[1]), tonumber(v[2])
  local people = min_people > 1 and (tonumber(redis.call('HGET', KEYS[2], tostring(t))) or 0)
  if faces and faces > 0 and people and people < min_people then
    out[#out + 1] = string.format(':%d', faces)
  elseif faces and faces > 0 and total then
    out[#out + 1] = string.format('%.4f:%d', total / faces, faces)
  else
    out[#out + 1] = ''
  end
end
return table.concat(out, ',')
"""
_SESSION_META_FIELDS = ("camera_id", "status", "started_at", "ended_at", "last_seen", "source",
                        "min_people")
_TOTAL_FIELDS = ("frames", "faces", "sentiment_sum")
# Shared reads kept at once (per-query names: sessions pages, session reports); past ticks'
# entries are dropped first, so viewers of this tick keep theirs.
SHARED_NAMES = 256
# Closed sessions' reports kept for good: their data no longer changes.
CLOSED_REPORTS = 64


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
    offset_s: float | None = None  # session time of the last applied frame
    # From the camera file (privacy): why the camera is analysed, and whether people are
    # told. None until ingest/the aggregator write them to the live hash.
    purpose: str | None = None
    notice: bool | None = None
    # moodstream.suppression: sentiment of fewer people than this is not shown (1 = off)
    min_people: int = 1

    @property
    def suppressed(self) -> bool:
        """Fewer faces in view now than min_people: the live sentiment is hidden."""
        return self.min_people > 1 and self.faces < self.min_people


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

    @property
    def drops_rows(self) -> bool:
        """True when rows read from the (start-time) index may fail this filter."""
        return bool(self.camera_id) or self.min_sentiment is not None or \
            self.max_sentiment is not None

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
    """A finite number, or None (absent, not a number, NaN or infinite)."""
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _timestamp(value: Any) -> float | None:
    """Epoch seconds the aggregator could have written (schemas.TS_LIMIT), else None: a
    page never overflows on a timestamp (datetime stops at year 9999)."""
    number = _float(value)
    return number if number is not None and 0 <= number <= TS_LIMIT else None


def _int(value: Any) -> int:
    number = _float(value)
    return int(number) if number is not None else 0


def utc(ts: float) -> datetime:
    """Epoch seconds -> naive UTC datetime (plotly shows naive datetimes as given)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).replace(tzinfo=None)


def _guarded(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except REDIS_ERRORS as exc:
            raise DataUnavailable(f"Redis unreachable ({type(exc).__name__})") from None
    return wrapper


@dataclass(frozen=True)
class LiveSnapshot:
    """What the live pages show, read once per refresh interval for every viewer."""

    now: float
    cameras: list[CameraLive]
    alerts: dict[str, dict[str, Any]]
    series: dict[str, list]  # camera id -> (UTC time, sentiment, faces), last LIVE_SERIES_S
    active: list[SessionRow]


LIVE_SERIES_S = 3599  # an hour of seconds: the KPI baseline; sparklines and trends cut it


class DashboardData:
    def __init__(self, client: redis.Redis, keys: RedisKeys,
                 clock: Callable[[], float] = time.time, cache_s: float = 0.0):
        self.client, self.keys, self.clock = client, keys, clock
        self.cache_s = cache_s
        self._trend_script = client.register_script(TREND_SCRIPT)
        self._cache: dict[str, tuple[int, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._closed_reports: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._settled = SettledSeconds()
        self._live_reports = LiveReports(client, keys)

    def shared(self, name: str, read: Callable[[], Any]) -> Any:
        """read()'s answer for this refresh interval, read once whatever the number of
        callers (viewers, callbacks); without cache_s, read() every time."""
        if self.cache_s <= 0:
            return read()
        tick = math.floor(self.clock() / self.cache_s)
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            cached = self._cache.get(name)
            if cached is not None and cached[0] == tick:
                return cached[1]
            value = read()
            self._remember(name, tick, value)
            return value

    def _remember(self, name: str, tick: int, value: Any) -> None:
        with self._guard:
            self._cache[name] = (tick, value)
            if len(self._cache) > SHARED_NAMES:
                stale = [n for n, (t, _v) in self._cache.items() if t != tick]
                for old in (stale or list(self._cache))[:len(self._cache) - SHARED_NAMES]:
                    self._cache.pop(old, None)
                    self._locks.pop(old, None)

    def live(self) -> LiveSnapshot:
        """Cameras, open alerts, an hour of per-second series and active sessions."""
        def read() -> LiveSnapshot:
            cameras = self.cameras()
            return LiveSnapshot(now=self.clock(), cameras=cameras, alerts=self.open_alerts(),
                                series=self.series(cameras, LIVE_SERIES_S),
                                active=self.active_sessions())
        return self.shared("live", read)

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
    def series(self, cameras: list[CameraLive], window_s: float) -> dict[str, list]:
        """Per-second (UTC time, mean sentiment, faces) of each camera's current session
        over the last window_s, by camera id; a second without faces is (t, None, 0).

        Reads only the window's seconds, and Redis itself divides sentiment_sum by faces
        (TREND_SCRIPT): one short string per camera instead of two fields per second. The
        shared reader (cache_s > 0) also keeps the settled seconds between ticks and reads
        only the rest (dashboard.settled_seconds).
        """
        now = self.clock()
        live = [c for c in cameras if c.session_id and
                (c.last_seen is None or c.last_seen >= now - window_s)]  # silent: left out
        pipe = self.client.pipeline(transaction=False)
        for cam in live:
            pipe.hget(self.keys.meta(cam.session_id), "started_at")
        plans = []
        for cam, started in zip(live, pipe.execute()):
            span = _window_seconds(cam, _timestamp(started), now, window_s)
            if span:
                key = (cam.session_id, _timestamp(started), cam.min_people)
                first = self._settled.first_unread(cam.camera_id, key, span) \
                    if self.cache_s > 0 else span.start
                plans.append((cam, _timestamp(started), span, key, range(first, span.stop)))
        trends = run_pipeline(self.client, [
            script_call(self._trend_script, [self.keys.buckets(cam.session_id),
                                             self.keys.bucket_tracks(cam.session_id)],
                        [read.start, read.stop - 1, MAX_TREND_SECONDS, int(MAX_OFFSET_S),
                         cam.min_people])
            for cam, _started, _span, _key, read in plans])
        out = {}
        for (cam, started, span, key, read), packed in zip(plans, trends):
            items = _points(started, read, packed.split(","))
            if self.cache_s > 0:
                items = self._settled.merge(cam.camera_id, key, span, items)
            points = [point for t, point in items if started + t >= now - window_s]
            if any(y is not None for _, y, _f in points):
                out[cam.camera_id] = points
        if self.cache_s > 0:
            self._settled.retain(cam.camera_id for cam, *_rest in plans)
        return out

    def trend(self, cameras: list[CameraLive], window_s: float) -> dict[str, list]:
        """(UTC time, sentiment) per second of each camera's current session in the window,
        labelled "camera · session" (the overview's trend lines)."""
        sessions = {c.camera_id: c.session_id for c in cameras}
        return {f"{camera} · {sessions[camera]}": [(x, y) for x, y, _f in points]
                for camera, points in self.series(cameras, window_s).items()}

    def shared_camera_ids(self) -> list[str]:
        """camera_ids() read once per tick for every viewer (the sessions page's menu)."""
        return self.shared("camera-ids", self.camera_ids)

    @_guarded
    def sessions(self, flt: SessionFilter = SessionFilter(), limit: int = 500,
                 offset: int = 0, scan: int | None = None) -> list[SessionRow]:
        """Sessions newest first, filtered by camera, start date and mean sentiment: the
        limit rows after the first offset that pass. Without a camera or sentiment filter
        only those rows are read (a range of the sessions ZSET); with one, the index is read
        in chunks until the page is full, at most scan ids (4 x (offset + limit) by default)."""
        if not flt.drops_rows:
            return self._session_rows(self._session_ids(flt, offset, limit))
        wanted, scan = offset + limit, scan or 4 * (offset + limit)
        chunk, rows, start = max(limit, 100), [], 0
        while len(rows) < wanted and start < scan:
            ids = self._session_ids(flt, start, min(chunk, scan - start))
            rows += [row for row in self._session_rows(ids) if flt.accepts(row)]
            start += chunk
            if len(ids) < chunk:
                break
        return rows[offset:wanted]

    def sessions_page(self, flt: SessionFilter, page: int, size: int,
                      scan: int) -> tuple[list[SessionRow], bool]:
        """Page `page` (0 = newest) of size rows and whether another follows, read once per
        tick and query for every viewer."""
        def read() -> tuple[list[SessionRow], bool]:
            rows = self.sessions(flt, size + 1, page * size, scan)
            return rows[:size], len(rows) > size
        return self.shared(f"sessions:{flt!r}:{page}:{size}", read)

    def _session_ids(self, flt: SessionFilter, start: int, num: int) -> list[str]:
        low = "-inf" if flt.start_ts is None else flt.start_ts
        high = "+inf" if flt.end_ts is None else f"({flt.end_ts}"  # "(" = exclusive
        return [s for s in self.client.zrevrangebyscore(self.keys.sessions, high, low,
                                                        start=start, num=num) if valid_id(s)]

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
        rows, floors = [], {}
        for index, session_id in enumerate(ids):
            meta = dict(zip(_SESSION_META_FIELDS, replies[2 * index]))
            totals = dict(zip(_TOTAL_FIELDS, replies[2 * index + 1]))
            if meta["camera_id"] is None:  # buckets and meta expired: fall back on the summary
                row = self._row_from_summary(session_id)  # summaries are suppressed already
            else:
                row = _session_row(session_id, meta, totals)
                if min_people_of(meta) > 1:
                    floors[session_id] = min_people_of(meta)
            if row:
                rows.append(row)
        return self._suppress_small(rows, floors) if floors else rows

    def _suppress_small(self, rows: list[SessionRow], floors: dict[str, int]) -> list[SessionRow]:
        """No mean sentiment for a session that saw fewer people than its min_people
        (moodstream.suppression); people are counted only where a floor is set."""
        pipe = self.client.pipeline(transaction=False)
        for session_id in floors:
            pipe.scard(self.keys.tracks(session_id))
        people = dict(zip(floors, pipe.execute()))
        return [replace(row, mean_sentiment=None)
                if people.get(row.session_id, 0) < floors.get(row.session_id, 0) else row
                for row in rows]

    def _row_from_summary(self, session_id: str) -> SessionRow | None:
        raw = self.client.get(self.keys.summary(session_id))
        if not raw:
            return None
        try:
            summary = json.loads(raw)
        except json.JSONDecodeError:
            return None
        if not isinstance(summary, dict):
            return None
        return SessionRow(session_id, str(summary.get("camera_id") or ""), "closed",
                          _iso_ts(summary.get("started_at")), _iso_ts(summary.get("ended_at")),
                          _int(summary.get("frames_processed")), _int(summary.get("faces_detected")),
                          _float(summary.get("mean_sentiment")))

    @_guarded
    def report(self, session_id: str) -> dict[str, Any]:
        """The full session report; raises ReportError / SessionNotFound for bad ids."""
        return build_report(self.client, self.keys, session_id)

    @_guarded
    def _tick_report(self, session_id: str) -> dict[str, Any]:
        """report(); the shared reader (cache_s > 0) reads an open session's seconds
        incrementally (dashboard.live_report), to the same report."""
        if self.cache_s <= 0:
            return build_report(self.client, self.keys, session_id)
        return self._live_reports.report(session_id)

    def shared_report(self, session_id: str) -> dict[str, Any]:
        """report(), read once per tick for every viewer of the session, and kept for good
        (the CLOSED_REPORTS most recent) once the session is closed: its data no longer
        changes. Callers must not modify it."""
        with self._guard:
            closed = self._closed_reports.get(session_id)
            if closed is not None:
                self._closed_reports.move_to_end(session_id)
                return closed
        report = self.shared(f"report:{session_id}", lambda: self._tick_report(session_id))
        if report.get("status") == "closed":
            with self._guard:
                self._closed_reports[session_id] = report
                while len(self._closed_reports) > CLOSED_REPORTS:
                    self._closed_reports.popitem(last=False)
        return report


def _camera_live(camera_id: str, raw: dict[str, str]) -> CameraLive:
    probs = {e: _float(raw.get(f"p:{e}")) or 0.0 for e in EMOTIONS}
    session_id = raw.get("session_id") or None
    min_people, faces = min_people_of(raw), _int(raw.get("faces"))
    if min_people > 1 and faces < min_people:  # too few in view: no live mood to show
        raw = {k: v for k, v in raw.items() if k not in ("sentiment", "dominant")}
        probs = {e: 0.0 for e in EMOTIONS}
    return CameraLive(
        camera_id=camera_id, session_id=session_id if session_id and valid_id(session_id) else None,
        last_seen=_timestamp(raw.get("last_seen")), sentiment=_float(raw.get("sentiment")),
        faces=_int(raw.get("faces")), people=_int(raw.get("people")),
        dominant=raw.get("dominant") or None, probs=probs,
        alert=raw.get("alert") == "open", status=raw.get("status", ""),
        offset_s=_float(raw.get("offset_s")), purpose=(raw.get("purpose") or "").strip() or None,
        notice={"1": True, "true": True, "0": False, "false": False}.get(
            str(raw.get("notice", "")).lower()), min_people=min_people)


def _session_row(session_id: str, meta: dict, totals: dict) -> SessionRow:
    faces = _int(totals.get("faces"))
    sentiment_sum = _float(totals.get("sentiment_sum")) or 0.0
    return SessionRow(
        session_id=session_id, camera_id=meta["camera_id"], status=meta.get("status") or "open",
        started_at=_timestamp(meta.get("started_at")),
        ended_at=_timestamp(meta.get("ended_at")) or _timestamp(meta.get("last_seen")),
        frames=_int(totals.get("frames")), faces=faces,
        mean_sentiment=round(sentiment_sum / faces, 4) if faces else None)


def _iso_ts(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _window_seconds(cam: CameraLive, started: float | None, now: float,
                    window_s: float) -> range | None:
    """Bucket seconds t of the camera's session inside the window (t = started + offset).

    The last applied offset bounds the span from above: a recorded file may run ahead of the
    wall clock, a lagging pipeline behind it.
    """
    if started is None:
        return None
    t_hi = int(cam.offset_s) if cam.offset_s is not None else int(now - started)
    t_lo = max(0, int(now - window_s - started), t_hi - int(window_s))
    if not 0 <= t_hi <= MAX_OFFSET_S or t_hi - t_lo >= MAX_TREND_SECONDS:
        return None  # not a session second the aggregator accepts, or a window too long
    return range(t_lo, t_hi + 1) if t_hi >= t_lo else None


def _points(started: float, span: range, packed: list[str]) -> list:
    """(t, (UTC time, sentiment, faces)) per second t of span; a second without faces is
    (time, None, 0): a gap, not a zero."""
    first = utc(started)
    out = []
    for t, value in zip(span, packed):
        sentiment, _, faces = value.partition(":")
        out.append((t, (first + timedelta(seconds=t), float(sentiment) if sentiment else None,
                        int(faces) if faces else 0)))
    return out
