"""Decode and face detection of several frames at once, on a small thread pool.

Why threads: cv2.imdecode, cv2.resize and the YuNet call (ctypes) release the GIL, so
while the caller's thread polls Kafka, classifies and sends, the workers decode and detect
the frames it handed over, on both cores.

The detections are exactly the sequential path's:
- A camera's detection width depends on its previous frame's faces (detector/scaling.py)
  and its tracks on all its earlier frames. So a job decodes at once, then waits until the
  camera's previous frame is settled (width chosen, faces observed, tracks assigned)
  before it chooses its own width and assigns its own tracks: each camera is a lane.
- Waiting alone would keep one camera's detection on one core. So a job also detects
  early, before waiting, at the width its camera used on its last two settled frames when
  those were equal (small faces, as in a crowd, keep the full width), and keeps that
  result only when the width the scaler then chooses is the same; otherwise it detects
  again at the chosen width. Detection is a function of the frame and the width, so the
  result is the same either way; a wrong guess costs CPU, not correctness.
- A job waits only for an earlier job of its camera, and the pool starts jobs in the
  order they were submitted, so that job is running or done: no deadlock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from detector.percamera import PerCamera
from moodstream.schemas import FrameHeaders

if TYPE_CHECKING:
    from detector.pipeline import FramePipeline, PendingFrame

NO_GUESS: Any = object()  # no early detection: wait for the previous frame first
DEPTH_PER_THREAD = 4  # frames in flight per worker before submit() blocks


@dataclass
class _Lane:
    """A camera's place in the pool."""

    tail: threading.Event | None = None  # set once its last submitted frame is settled
    widths: tuple = (NO_GUESS, NO_GUESS)  # detection widths of its last two settled frames


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class FramePool:
    """submit() -> a PendingFrame that a worker fills in; per camera in submission order."""

    def __init__(self, pipeline: "FramePipeline", threads: int, depth: int | None = None):
        self.pipeline = pipeline
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="detect")
        # Bounds the frames in flight (their JPEGs and decoded pixels), and so how far a
        # batch can grow past max_batch before its crops are counted.
        self._slots = threading.BoundedSemaphore(depth or DEPTH_PER_THREAD * threads)
        # The scaler's, the trackers' and the lanes' per-camera dicts and the track id
        # counter are shared by all cameras, whose jobs settle at the same time.
        self._state = threading.Lock()
        self._lanes: PerCamera[_Lane] = PerCamera(_Lane)
        self.early = Counter()  # early detections "kept" or "redone"

    def submit(self, jpeg: bytes, headers: FrameHeaders, source: Any = None) -> "PendingFrame":
        from detector.pipeline import PendingFrame
        size = self.pipeline.model.size
        frame = PendingFrame(headers, 0, 0, [], [], np.zeros((0, size, size, 1), np.uint8),
                             source=source, done=threading.Event())
        settled = threading.Event()
        self._slots.acquire()
        with self._state:
            lane = self._lanes.get(headers.camera_id)
            previous, lane.tail = lane.tail, settled
        try:
            self._executor.submit(self._job, frame, jpeg, lane, previous, settled)
        except RuntimeError:  # shut down: nothing will run it, so nothing may wait for it
            self._finish(frame, previous, settled)
            raise
        return frame

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _job(self, frame: "PendingFrame", jpeg: bytes, lane: _Lane,
             previous: threading.Event | None, settled: threading.Event) -> None:
        try:
            self._fill(frame, jpeg, lane, previous, settled)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the frame
            frame.error = exc
        finally:
            self._finish(frame, previous, settled)

    def _finish(self, frame: "PendingFrame", previous: threading.Event | None,
                settled: threading.Event) -> None:
        # A frame that failed early is settled only after the one before it, so the next
        # frame of its camera still comes after every earlier one.
        if previous is not None:
            previous.wait()
        settled.set()
        frame.done.set()
        self._slots.release()

    def _fill(self, frame: "PendingFrame", jpeg: bytes, lane: _Lane,
              previous: threading.Event | None, settled: threading.Event) -> None:
        pipeline, headers = self.pipeline, frame.headers
        start = time.perf_counter()
        image = pipeline.decode_checked(jpeg)
        frame.decode_ms = _ms(start)
        frame.frame_h, frame.frame_w = image.shape[:2]
        start = time.perf_counter()
        with self._state:
            guess = self._guess(lane, headers)
        early = None if guess is NO_GUESS else pipeline.detect(image, guess)
        detect_ms = _ms(start)
        if previous is not None:
            previous.wait()
        start = time.perf_counter()
        with self._state:
            width = pipeline.detection_width(headers, frame.frame_w)
        boxes = early if guess is not NO_GUESS and guess == width else pipeline.detect(image, width)
        with self._state:
            kept, tracks = pipeline.settle(image, headers, boxes)
            lane.widths = (width, lane.widths[0])
            if guess is not NO_GUESS:
                self.early["kept" if boxes is early else "redone"] += 1
        settled.set()
        frame.boxes, frame.tracks, frame.excluded = kept, tracks, len(boxes) - len(kept)
        frame.crops = pipeline.crops(image, kept)
        frame.detect_ms = detect_ms + _ms(start)

    def _guess(self, lane: _Lane, headers: FrameHeaders):
        """The width to detect at before the previous frame is settled, or NO_GUESS."""
        if not self.pipeline.scaled(headers):
            return None  # the detector's own width, whatever came before
        last, before = lane.widths
        return last if last is not NO_GUESS and last == before else NO_GUESS
