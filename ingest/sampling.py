"""Frame sampling at a target fps, real-time pacing of files, and the bounded hand-off queue."""

from __future__ import annotations

import queue
import threading
import time
from enum import Enum


class DropPolicy(str, Enum):
    """What happens when the next stage is slower than the source."""

    WAIT = "wait"  # files: block the reader, never lose a frame
    DROP_OLDEST = "drop_oldest"  # live: discard the stalest queued frame, stay current


class FrameSampler:
    """Keeps frames so that kept timestamps are at least 1/fps apart (fps 0 keeps all).

    Timestamps are media seconds for files and wall seconds for live sources, so the
    same rule samples both.
    """

    def __init__(self, fps: float):
        self.interval = 1.0 / fps if fps > 0 else 0.0
        self._next_due: float | None = None

    def keep(self, t: float) -> bool:
        if self.interval == 0.0:
            return True
        # Half a frame of slack so 30 fps -> 10 fps keeps every 3rd frame despite rounding.
        if self._next_due is None or t >= self._next_due - 1e-3:
            due = self._next_due if self._next_due is not None else t
            # Never schedule in the past: after a pause sample from now on, no burst.
            self._next_due = max(due + self.interval, t + self.interval / 2)
            return True
        return False


class RealtimePacer:
    """Releases file frames no earlier than their media time after the first one."""

    def __init__(self, stop: threading.Event):
        self._stop = stop
        self._anchor: tuple[float, float] | None = None  # (wall monotonic, media seconds)

    def wait_for(self, media_s: float) -> None:
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = (now, media_s)
            return
        delay = self._anchor[0] + (media_s - self._anchor[1]) - now
        if delay > 0:
            self._stop.wait(delay)

    def reset(self) -> None:
        self._anchor = None


SENTINEL = object()


class FrameQueue:
    """Bounded queue between a reader and its worker, with a named drop policy."""

    def __init__(self, size: int, policy: DropPolicy, stop: threading.Event):
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self.policy = policy
        self._stop = stop

    def put(self, item) -> int:
        """Enqueue; returns how many queued frames were dropped to make room."""
        if self.policy is DropPolicy.WAIT:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.2)
                    return 0
                except queue.Full:
                    continue
        return self._put_dropping_oldest(item)

    def close(self) -> int:
        """Always gets the sentinel in: under WAIT it queues behind every frame (dropping
        only once stop is set), under DROP_OLDEST it evicts the stalest frame if full."""
        return self.put(SENTINEL)

    def _put_dropping_oldest(self, item) -> int:
        dropped = 0
        while True:
            try:
                self._queue.put_nowait(item)
                return dropped
            except queue.Full:
                try:
                    old = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if old is SENTINEL:  # never lose the end marker
                    self._queue.put_nowait(old)
                    return dropped
                dropped += 1

    def get(self, timeout: float | None = None):
        return self._queue.get(timeout=timeout)
