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

import math
import threading
import time
from typing import Any, Callable

import redis

from dashboard.live_data import (LIVE_SERIES_S, MAX_TREND_SECONDS, TREND_SCRIPT, CameraLive,
                                 LiveReads, LiveSnapshot)
from dashboard.live_report import LiveReports
from dashboard.redis_values import DataUnavailable, _float, _guarded, _int, _timestamp, utc
from dashboard.sessions_data import (CLOSED_ROWS, KeptClosed, SessionFilter, SessionReads,
                                     SessionRow)
from dashboard.settled_seconds import SettledSeconds
from moodstream.redis_keys import RedisKeys
from moodstream.reports import build_report

# What callers import from here (the one entry point of the dashboard's reads).
__all__ = ["CameraLive", "DashboardData", "DataUnavailable", "LIVE_SERIES_S", "LiveSnapshot",
           "MAX_TREND_SECONDS", "SessionFilter", "SessionRow", "TREND_SCRIPT", "_float",
           "_guarded", "_int", "_timestamp", "utc"]

# Shared reads kept at once (per-query names: sessions pages, session reports); past ticks'
# entries are dropped first, so viewers of this tick keep theirs.
SHARED_NAMES = 256
# Closed sessions' reports kept for good: their data no longer changes.
CLOSED_REPORTS = 64


class DashboardData(LiveReads, SessionReads):
    """The reads of every page (live: dashboard.live_data, sessions: dashboard.sessions_data)
    behind the one shared cache, and a session's report."""

    def __init__(self, client: redis.Redis, keys: RedisKeys,
                 clock: Callable[[], float] = time.time, cache_s: float = 0.0):
        self.client, self.keys, self.clock = client, keys, clock
        self.cache_s = cache_s
        self._trend_script = client.register_script(TREND_SCRIPT)
        self._cache: dict[str, tuple[int, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._closed_reports = KeptClosed(CLOSED_REPORTS)
        self._settled = SettledSeconds()
        self._live_reports = LiveReports(client, keys)
        self.closed_rows = KeptClosed(CLOSED_ROWS)  # closed sessions' rows, for column sorts

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
        closed = self._closed_reports.get([session_id])
        if closed:
            return closed[session_id]
        report = self.shared(f"report:{session_id}", lambda: self._tick_report(session_id))
        if report.get("status") == "closed":
            self._closed_reports.keep([(session_id, report)])
        return report
