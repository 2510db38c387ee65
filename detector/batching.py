"""Dynamic batching across frames and cameras: collect until max_batch crops or max_wait_ms."""

from __future__ import annotations

import time

from detector.pipeline import PendingFrame
from moodstream.schemas import DetectionMessage


class FrameBatch:
    """Frames waiting for one emotion call, and everything their commit depends on.

    - `entries`, in input order: a PendingFrame to classify, or the ready "skipped"
      DetectionMessage of a dead-lettered frame (so detections keep their input order).
    - `offsets`: per (topic, partition), the next offset to commit once every send of this
      batch is acknowledged; `starts`: the first offset of each, where a failed delivery
      rewinds the consumer to.
    - `sends`: futures of what was already sent for this batch (dead letters).
    - `crops`: the faces of its frames detected so far. A pooled pipeline's frame counts
      once its worker is done, so a batch can grow a few frames past max_batch crops
      (the pool bounds how many are in flight); classify() splits it into max_batch calls.
    """

    def __init__(self, max_batch: int, max_wait_ms: float, clock=time.monotonic):
        self.max_batch, self.max_wait_s, self.clock = max_batch, max_wait_ms / 1000.0, clock
        self.entries: list[PendingFrame | DetectionMessage] = []
        self.offsets: dict = {}
        self.starts: dict = {}
        self.sends: list = []
        self._crops = 0
        self._uncounted: list[PendingFrame] = []  # frames still being detected
        self.started: float | None = None

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def frames(self) -> list[PendingFrame]:
        return [e for e in self.entries if isinstance(e, PendingFrame)]

    def _touch(self, partition, offset: int | None) -> None:
        if self.started is None:
            self.started = self.clock()
        if partition is not None and offset is not None:
            self.offsets[partition] = max(self.offsets.get(partition, 0), offset + 1)
            self.starts[partition] = min(self.starts.get(partition, offset), offset)

    def add(self, frame: PendingFrame, partition=None, offset: int | None = None) -> None:
        self.entries.append(frame)
        self._uncounted.append(frame)
        self._touch(partition, offset)

    @property
    def crops(self) -> int:
        waiting = []
        for frame in self._uncounted:  # one look at each: a worker may finish meanwhile
            if frame.ready:
                self._crops += frame.crop_count()
            else:
                waiting.append(frame)
        self._uncounted = waiting
        return self._crops

    def settle(self, partition, offset: int, sent=None,
               skipped: DetectionMessage | None = None) -> None:
        """A record handled outside the model (dead-lettered): commit it with this batch,
        once `sent` (its dead letter's future) and its `skipped` detection are delivered."""
        if sent is not None:
            self.sends.append(sent)
        if skipped is not None:
            self.entries.append(skipped)
        self._touch(partition, offset)

    @property
    def empty(self) -> bool:
        return self.started is None

    @property
    def full(self) -> bool:
        return self.crops >= self.max_batch

    def wait_left_s(self) -> float:
        if self.started is None:
            return self.max_wait_s
        return max(0.0, self.max_wait_s - (self.clock() - self.started))

    @property
    def due(self) -> bool:
        return not self.empty and (self.full or self.wait_left_s() <= 0.0)
