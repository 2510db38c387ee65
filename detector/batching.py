"""Dynamic batching across frames and cameras: collect until max_batch crops or max_wait_ms,
and hand on the frames that are ready while the pool still works on the ones behind them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from detector.pipeline import PendingFrame
from moodstream.schemas import DetectionMessage


@dataclass
class _Slot:
    """One consumed record: its place in the log and what became of it."""

    partition: Any  # (topic, partition), or None outside Kafka
    offset: int | None
    entry: PendingFrame | DetectionMessage | None  # None: dead-lettered, nothing to announce
    send: Any = None  # its dead letter's future

    @property
    def ready(self) -> bool:
        return not isinstance(self.entry, PendingFrame) or self.entry.ready


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

    take_ready() splits off the longest head of records whose frames are all done, so the
    service can classify and send them while the pool detects the rest. A head, because
    then each partition's handed-off records are exactly its oldest ones: committing their
    offsets never skips a record still in the pool, and each camera's detections (and
    track smoothing) stay in frame order.
    """

    def __init__(self, max_batch: int, max_wait_ms: float, clock=time.monotonic):
        self.max_batch, self.max_wait_s, self.clock = max_batch, max_wait_ms / 1000.0, clock
        self._slots: list[_Slot] = []
        self.offsets: dict = {}
        self.starts: dict = {}
        self.sends: list = []
        self.started: float | None = None

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def entries(self) -> list[PendingFrame | DetectionMessage]:
        return [s.entry for s in self._slots if s.entry is not None]

    @property
    def frames(self) -> list[PendingFrame]:
        return [s.entry for s in self._slots if isinstance(s.entry, PendingFrame)]

    def _append(self, slot: _Slot) -> None:
        if self.started is None:
            self.started = self.clock()
        self._slots.append(slot)
        if slot.send is not None:
            self.sends.append(slot.send)
        if slot.partition is not None and slot.offset is not None:
            partition, offset = slot.partition, slot.offset
            self.offsets[partition] = max(self.offsets.get(partition, 0), offset + 1)
            self.starts[partition] = min(self.starts.get(partition, offset), offset)

    def add(self, frame: PendingFrame, partition=None, offset: int | None = None) -> None:
        self._append(_Slot(partition, offset, frame))

    def settle(self, partition, offset: int, sent=None,
               skipped: DetectionMessage | None = None) -> None:
        """A record handled outside the model (dead-lettered): commit it with this batch,
        once `sent` (its dead letter's future) and its `skipped` detection are delivered."""
        self._append(_Slot(partition, offset, skipped, sent))

    @property
    def crops(self) -> int:
        """Faces of the frames whose detection is done (one look at each frame)."""
        return sum(f.crop_count() for f in self.frames if f.ready)

    def ready_head(self) -> tuple[int, int]:
        """(records, crops) of the longest head whose frames are all done."""
        records = crops = 0
        for slot in self._slots:
            if not slot.ready:
                break
            records += 1
            if isinstance(slot.entry, PendingFrame):
                crops += slot.entry.crop_count()
        return records, crops

    @property
    def in_flight(self) -> bool:
        """Whether a frame of this batch is still being decoded or detected."""
        return any(not slot.ready for slot in self._slots)

    def take_ready(self) -> "FrameBatch | None":
        """Split off the ready head as a batch of its own (None: the first frame is not
        done yet). What stays behind starts a new batching window."""
        count, _crops = self.ready_head()
        if not count:
            return None
        head = FrameBatch(self.max_batch, self.max_wait_s * 1000.0, self.clock)
        for slot in self._slots[:count]:
            head._append(slot)
        head.started = self.started
        self._rebuild(self._slots[count:])
        return head

    def drop(self, partitions) -> int:
        """Forget the records of these partitions (rewound: they will be read again);
        returns how many were dropped."""
        kept = [s for s in self._slots if s.partition not in partitions]
        dropped = len(self._slots) - len(kept)
        if dropped:
            self._rebuild(kept)
        return dropped

    def _rebuild(self, slots: list[_Slot]) -> None:
        self._slots, self.offsets, self.starts, self.sends = [], {}, {}, []
        self.started = None
        for slot in slots:
            self._append(slot)

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
