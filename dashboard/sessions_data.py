"""The sessions page's reads: rows of the session index (a range of it, or chunks of it
under a camera or sentiment filter), the active sessions, and min_people on their means. A
mixin of dashboard.data.DashboardData, which provides client, keys and shared()."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

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

    def _session_ids(self, flt: SessionFilter, start: int, num: int) -> list[str]:
        low = "-inf" if flt.start_ts is None else flt.start_ts
        high = "+inf" if flt.end_ts is None else f"({flt.end_ts}"  # "(" = exclusive
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

def _session_row(session_id: str, meta: dict, totals: dict) -> SessionRow:
    faces = _int(totals.get("faces"))
    sentiment_sum = _float(totals.get("sentiment_sum")) or 0.0
    return SessionRow(
        session_id=session_id, camera_id=meta["camera_id"], status=meta.get("status") or "open",
        started_at=_timestamp(meta.get("started_at")),
        ended_at=_timestamp(meta.get("ended_at")) or _timestamp(meta.get("last_seen")),
        frames=_int(totals.get("frames")), faces=faces,
        mean_sentiment=round(sentiment_sum / faces, 4) if faces else None)

