"""Per-camera sessions: explicit ids, or automatic ones that roll over on a gap or a schedule.

The schedule (hourly by default) applies to live sources only: a file is one session.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ingest.config import SessionPolicy


@dataclass(frozen=True)
class Session:
    id: str
    start_media_s: float  # media/wall seconds of the source at the session's first frame
    started_at: float  # epoch seconds


@dataclass(frozen=True)
class Rollover:
    """What the worker must do for a frame: end `ended` (if any), then start `started`."""

    ended: Session | None
    started: Session | None
    reason: str = ""


def automatic_id(camera_id: str, at: float) -> str:
    return f"{camera_id}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(at))}"


class SessionTracker:
    """Decides, frame by frame, whether the camera's current session goes on."""

    def __init__(self, camera_id: str, policy: SessionPolicy, live: bool = True):
        self.camera_id, self.policy = camera_id, policy
        self.every_s = policy.every_s if live else 0.0
        self.current: Session | None = None
        self._last_media_s: float | None = None
        self._used_ids: set[str] = set()

    def on_frame(self, media_s: float, capture_ts: float) -> Rollover:
        current, last = self.current, self._last_media_s
        self._last_media_s = media_s
        if current is None:
            return Rollover(None, self._start(media_s, capture_ts))
        if self.policy.id is not None:
            return Rollover(None, None)
        if last is not None and media_s - last > self.policy.gap_s:
            return Rollover(current, self._start(media_s, capture_ts), "gap")
        if self._schedule_slot(capture_ts) != self._schedule_slot(current.started_at):
            return Rollover(current, self._start(media_s, capture_ts), "schedule")
        return Rollover(None, None)

    def finish(self) -> Session | None:
        ended, self.current = self.current, None
        return ended

    def _schedule_slot(self, ts: float) -> int:
        # Slots align to the wall clock (every_s=3600 -> on the hour, UTC), not to the start.
        return math.floor(ts / self.every_s) if self.every_s else 0

    def _start(self, media_s: float, capture_ts: float) -> Session:
        session_id = self.policy.id or self._unique(automatic_id(self.camera_id, capture_ts))
        self._used_ids.add(session_id)
        self.current = Session(session_id, media_s, capture_ts)
        return self.current

    def _unique(self, base: str) -> str:
        candidate, n = base, 1
        while candidate in self._used_ids:
            n += 1
            candidate = f"{base}-{n}"
        return candidate
