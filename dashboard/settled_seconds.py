"""Seconds of the live sessions that no longer change, kept between refreshes, so that the
shared reader (dashboard.data.DashboardData.series) reads from Redis only the seconds that
may still move: the last SETTLE_S of each camera's window, plus what is new.

Reading the whole hour every tick cost one HMGET per camera-second inside Redis (360,000 a
tick for 100 cameras) and as many points built in Python. A second older than SETTLE_S
behind the camera's last applied frame is taken as final: the aggregator applies a late
frame to its second only while the pipeline lags behind by less than that. What is kept is
tied to (session, start, min_people): a new session, or a changed floor, reads afresh.

The open sessions' drill-down (dashboard.live_report) keeps its report's seconds the same
way, one entry per session, at most max_kept of them (the least recently read go first).
"""

from __future__ import annotations

import bisect
import threading
from typing import Any, Hashable, Iterable

SETTLE_S = 60

Item = tuple[int, Any]  # (session second t, the reader's point for it)


class SettledSeconds:
    def __init__(self, settle_s: int = SETTLE_S, max_kept: int | None = None):
        self.settle_s, self.max_kept = settle_s, max_kept
        self._kept: dict[str, tuple[Hashable, list[Item]]] = {}
        self._lock = threading.Lock()

    def first_unread(self, camera_id: str, key: Hashable, span: range) -> int:
        """The first second of span that is not kept (span.start when nothing is)."""
        with self._lock:
            items = self._items(camera_id, key)
        if not items or items[0][0] > span.start:  # the window reaches further back: read all
            return span.start
        return max(span.start, items[-1][0] + 1)

    def merge(self, camera_id: str, key: Hashable, span: range, fresh: list[Item]) -> list[Item]:
        """The kept seconds of span followed by the fresh ones (read from first_unread on);
        keeps those at least settle_s older than span's last second for the next tick."""
        with self._lock:
            kept = self._items(camera_id, key)
            start = bisect.bisect_left(kept, span.start, key=lambda item: item[0])
            items = kept[start:] + fresh if not fresh or not kept or \
                kept[-1][0] < fresh[0][0] else fresh
            settled = bisect.bisect_right(items, span.stop - 1 - self.settle_s,
                                          key=lambda item: item[0])
            self._kept.pop(camera_id, None)  # re-inserted last: the most recently read
            self._kept[camera_id] = (key, items[:settled])
            while self.max_kept is not None and len(self._kept) > self.max_kept:
                del self._kept[next(iter(self._kept))]
        return items

    def retain(self, camera_ids: Iterable[str]) -> None:
        """Forget the cameras not read any more."""
        wanted = set(camera_ids)
        with self._lock:
            for camera_id in [c for c in self._kept if c not in wanted]:
                del self._kept[camera_id]

    def _items(self, camera_id: str, key: Hashable) -> list[Item]:
        kept = self._kept.get(camera_id)
        return kept[1] if kept is not None and kept[0] == key else []
