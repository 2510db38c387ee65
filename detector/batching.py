"""Dynamic batching across frames and cameras: collect until max_batch crops or max_wait_ms."""

from __future__ import annotations

import time

from detector.pipeline import PendingFrame


class FrameBatch:
    """Frames waiting for one emotion call, plus the input offsets they will settle.

    `offsets` holds, per (topic, partition), the next offset to commit once this batch
    (and any dead-lettered records polled alongside it) has been produced and flushed.
    """

    def __init__(self, max_batch: int, max_wait_ms: float, clock=time.monotonic):
        self.max_batch, self.max_wait_s, self.clock = max_batch, max_wait_ms / 1000.0, clock
        self.frames: list[PendingFrame] = []
        self.offsets: dict = {}
        self.crops = 0
        self.started: float | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def _touch(self, partition, offset: int | None) -> None:
        if self.started is None:
            self.started = self.clock()
        if partition is not None and offset is not None:
            self.offsets[partition] = max(self.offsets.get(partition, 0), offset + 1)

    def add(self, frame: PendingFrame, partition=None, offset: int | None = None) -> None:
        self.frames.append(frame)
        self.crops += len(frame.crops)
        self._touch(partition, offset)

    def settle(self, partition, offset: int) -> None:
        """A record handled outside the model (dead-lettered): commit it with this batch."""
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
