"""The sessions page's reads: rows of the session index (a range of it, or chunks of it
under a camera or sentiment filter), the active sessions, and min_people on their means. A
mixin of dashboard.data.DashboardData, which provides client, keys, shared() and
closed_rows (a KeptClosed of rows).

Column sorts (mean sentiment, faces, frames, duration) have no index: the aggregator keeps
only the start-time one, and an index per column would still have to be cut to the page's
date range and merged with the open sessions, whose numbers move every second. So a sorted
page reads the window of the date range, its newest `scan` sessions, once per tick for every
viewer, drops the rows the other filters refuse, and sorts them. A closed session's row no
longer changes, so it is read once and kept (KeptClosed): a tick re-reads only the open
sessions of the window. Where the range holds more than `scan` sessions the sort covers the
newest of them, and SortedPage says so (capped) for the page to tell its user.
"""

from __future__ import annotations

import collections
import json
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from dashboard.redis_values import _float, _guarded, _int, _iso_ts, _timestamp
from moodstream.schemas import valid_id
from moodstream.suppression import min_people_of, too_few

_SESSION_META_FIELDS = ("camera_id", "status", "started_at", "ended_at", "last_seen", "source",
                        "min_people")
_TOTAL_FIELDS = ("frames", "faces", "sentiment_sum")


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
    oldest_first: bool = False  # the page's order: by start time, newest first by default
    status: str | None = None  # one of SESSION_STATUSES: open, ending, closed

    @property
    def drops_rows(self) -> bool:
        """True when rows read from the (start-time) index may fail this filter."""
        return bool(self.camera_id) or bool(self.status) or self.min_sentiment is not None or \
            self.max_sentiment is not None

    def accepts(self, row: SessionRow) -> bool:
        if self.camera_id and row.camera_id != self.camera_id:
            return False
        if self.status and row.status != self.status:
            return False
        if self.min_sentiment is None and self.max_sentiment is None:
            return True
        if row.mean_sentiment is None:  # no faces: a sentiment filter cannot match it
            return False
        if self.min_sentiment is not None and row.mean_sentiment < self.min_sentiment:
            return False
        return self.max_sentiment is None or row.mean_sentiment <= self.max_sentiment


def _duration(row: SessionRow) -> float | None:
    if row.started_at is None or row.ended_at is None:
        return None
    return row.ended_at - row.started_at


@dataclass(frozen=True)
class ColumnSort:
    label: str
    column: Callable[[SessionRow], float | None]
    descending: bool

    def apply(self, rows: list[SessionRow]) -> list[SessionRow]:
        """rows sorted on the column, rows without a value (no faces, sentiment hidden by
        min_people, no end yet) last either way; ties keep the rows' order (newest first)."""
        sign = -1 if self.descending else 1
        def key(row: SessionRow) -> tuple[bool, float]:
            value = self.column(row)
            return value is None, 0.0 if value is None else sign * value
        return sorted(rows, key=key)


# The Sessions page's orders: by start time (a range of the index) or by a column (a window).
START_ORDERS = {"newest": "Newest first", "oldest": "Oldest first"}
COLUMN_SORTS = {
    "sentiment-asc": ColumnSort("Lowest sentiment", lambda r: r.mean_sentiment, False),
    "sentiment-desc": ColumnSort("Highest sentiment", lambda r: r.mean_sentiment, True),
    "faces-desc": ColumnSort("Most faces", lambda r: r.faces, True),
    "faces-asc": ColumnSort("Fewest faces", lambda r: r.faces, False),
    "frames-desc": ColumnSort("Most frames", lambda r: r.frames, True),
    "frames-asc": ColumnSort("Fewest frames", lambda r: r.frames, False),
    "duration-desc": ColumnSort("Longest", _duration, True),
    "duration-asc": ColumnSort("Shortest", _duration, False),
}


@dataclass(frozen=True)
class SortedPage:
    rows: list[SessionRow]
    more: bool  # another page follows
    matched: int  # rows of the window that pass the filters
    window: int  # sessions of the date range read: its newest
    in_range: int  # sessions of the date range in the index
    dated: bool = False  # the filter names dates (else the range is every session)

    @property
    def capped(self) -> bool:
        """True when the range holds sessions older than the window: not sorted with it."""
        return self.in_range > self.window


def sort_note(sort: SortedPage, order: str) -> str:
    """The Sessions page's line on what a column sort covered: all the range's sessions, or only its newest (capped)."""
    what = f"{COLUMN_SORTS[order].label} first"
    if sort.capped and sort.dated:
        return (f"{what}, sorted among the newest {sort.window:,} of the {sort.in_range:,} "
                "sessions of these dates: narrow the dates to sort them all.")
    if sort.capped:
        return (f"{what}, sorted among the newest {sort.window:,} of all {sort.in_range:,} "
                "sessions: pick dates to sort them all.")
    return f"{what}, among all {sort.matched:,} matching sessions."


# Closed sessions' rows kept between ticks: 4 x the largest session_list_limit (a window).
CLOSED_ROWS = 40_000


class KeptClosed:
    """Values of closed sessions (their rows, their reports), which no longer change, kept
    by session id; the least recently used go first past `size`."""

    def __init__(self, size: int):
        self.size = size
        self._values: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, ids: Iterable[str]) -> dict[str, Any]:
        with self._lock:
            found = {s: self._values[s] for s in ids if s in self._values}
            for session_id in found:
                self._values.move_to_end(session_id)
            return found

    def keep(self, items: Iterable[tuple[str, Any]]) -> None:
        """(session id, value) pairs of closed sessions."""
        with self._lock:
            for session_id, value in items:
                self._values[session_id] = value
                self._values.move_to_end(session_id)
            while len(self._values) > self.size:
                self._values.popitem(last=False)


class SessionReads:
    """Session rows of the index and of the active set (mixed into DashboardData)."""

    @_guarded
    def sessions(self, flt: SessionFilter = SessionFilter(), limit: int = 500,
                 offset: int = 0, scan: int | None = None) -> list[SessionRow]:
        """Sessions newest (or oldest) first, filtered by camera, start date and mean sentiment: the
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

    def sorted_page(self, flt: SessionFilter, sort: str, page: int, size: int,
                    scan: int) -> SortedPage:
        """Page `page` of the sessions that pass flt, sorted by COLUMN_SORTS[sort], among the
        newest scan sessions of flt's date range; read and sorted once per tick for every
        viewer of the query."""
        column = COLUMN_SORTS[sort]
        def read() -> tuple[list[SessionRow], int, int]:
            rows, window, in_range = self._sort_window(flt, scan)
            return column.apply(rows), window, in_range
        rows, window, in_range = self.shared(f"sorted:{_window_filter(flt)!r}:{sort}:{scan}",
                                             read)
        start = page * size
        return SortedPage(rows[start:start + size], len(rows) > start + size, len(rows),
                          window, in_range, flt.start_ts is not None or flt.end_ts is not None)

    @_guarded
    def _sort_window(self, flt: SessionFilter, scan: int) -> tuple[list[SessionRow], int, int]:
        """The rows of the newest scan sessions of flt's date range that pass flt, newest
        first, how many sessions were read and how many the range holds; shared per tick
        by every sort of the same filters."""
        flt = _window_filter(flt)
        low, high = _score_range(flt)
        def read() -> tuple[list[SessionRow], int, int]:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrevrangebyscore(self.keys.sessions, high, low, start=0, num=scan)
            pipe.zcount(self.keys.sessions, low, high)
            ids, in_range = pipe.execute()
            rows = self._rows_keeping_closed([s for s in ids if valid_id(s)])
            return [row for row in rows if flt.accepts(row)], len(ids), in_range
        return self.shared(f"sort-window:{flt!r}:{scan}", read)

    def _rows_keeping_closed(self, ids: list[str]) -> list[SessionRow]:
        """_session_rows(ids), a closed session's row read once (closed_rows)."""
        known = self.closed_rows.get(ids)
        fresh = self._session_rows([s for s in ids if s not in known])
        self.closed_rows.keep((row.session_id, row) for row in fresh if row.status == "closed")
        known.update((row.session_id, row) for row in fresh)
        return [known[s] for s in ids if s in known]

    def _session_ids(self, flt: SessionFilter, start: int, num: int) -> list[str]:
        low, high = _score_range(flt)
        if flt.oldest_first:
            ids = self.client.zrangebyscore(self.keys.sessions, low, high, start=start, num=num)
        else:
            ids = self.client.zrevrangebyscore(self.keys.sessions, high, low, start=start,
                                               num=num)
        return [s for s in ids if valid_id(s)]

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
                if too_few(people.get(row.session_id, 0), floors.get(row.session_id, 1))
                else row for row in rows]

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

def _score_range(flt: SessionFilter) -> tuple[float | str, float | str]:
    """flt's start dates as a ZRANGEBYSCORE (min, max) of the sessions index."""
    low = "-inf" if flt.start_ts is None else flt.start_ts
    high = "+inf" if flt.end_ts is None else f"({flt.end_ts}"  # "(" = exclusive
    return low, high


def _window_filter(flt: SessionFilter) -> SessionFilter:
    """flt as a sorted page's window reads it: the newest of the range, whatever the order."""
    return replace(flt, oldest_first=False)


def _session_row(session_id: str, meta: dict, totals: dict) -> SessionRow:
    faces = _int(totals.get("faces"))
    sentiment_sum = _float(totals.get("sentiment_sum")) or 0.0
    return SessionRow(
        session_id=session_id, camera_id=meta["camera_id"], status=meta.get("status") or "open",
        started_at=_timestamp(meta.get("started_at")),
        ended_at=_timestamp(meta.get("ended_at")) or _timestamp(meta.get("last_seen")),
        frames=_int(totals.get("frames")), faces=faces,
        mean_sentiment=round(sentiment_sum / faces, 4) if faces else None)

