"""Frame processing without Kafka: decode -> detect -> mask -> track -> crop, then one
batched emotion call for many frames -> one DetectionMessage per frame.

Kept free of Kafka so the benchmark's stage-only run and the tests use the same code
as the service.

With `threads` > 1, decode and detection run on a small thread pool (detector/overlap.py):
prepare() checks the frame's size at once and returns a PendingFrame that a worker fills
in; classify() and message() wait for it. Each camera's detection width and tracks still
advance in frame order, so the detections equal the sequential path's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from detector.classifier import EmotionModel
from detector.faces import FaceBox, FaceDetector, crop_face
from detector.jpeg import JpegHeaderError, read_jpeg_header
from detector.roi import ExclusionMask
from detector.scaling import DetectionScaler
from detector.tracking import Track, Trackers
from moodstream.emotions import EMOTIONS
from moodstream.schemas import DetectionMessage, Face, FrameHeaders, Timing


class PoisonFrame(ValueError):
    """A frame that can never be processed; str() is the dead-letter reason."""


@dataclass
class PendingFrame:
    """A detected frame waiting for its batched emotion call. Holds crops, never the frame.

    From a pooled pipeline it is filled in by a worker: `done` is set once it is, and
    `error` is what made the frame unusable (raised again by wait()).
    """

    headers: FrameHeaders
    frame_w: int
    frame_h: int
    boxes: list[FaceBox]
    tracks: list[Track]
    crops: np.ndarray  # (faces, size, size, 1) uint8
    excluded: int = 0
    decode_ms: float = 0.0
    detect_ms: float = 0.0
    source: Any = None  # whatever the caller needs back (the Kafka record)
    probs: np.ndarray | None = field(default=None, repr=False)
    done: threading.Event | None = field(default=None, repr=False)  # None: filled in already
    error: BaseException | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.done is None or self.done.is_set()

    def wait(self) -> "PendingFrame":
        """The frame once its worker is done; raises what made it unusable (PoisonFrame...)."""
        if self.done is not None:
            self.done.wait()
        if self.error is not None:
            raise self.error
        return self

    def crop_count(self) -> int:
        """Faces to classify (0 for a frame that failed); call once ready."""
        return 0 if self.error is not None else len(self.crops)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _probs_dict(values: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), 5) for label, p in zip(EMOTIONS, values)}


class FramePipeline:
    def __init__(self, detector: FaceDetector, model: EmotionModel, trackers: Trackers,
                 masks: dict[str, ExclusionMask] | None = None, max_batch: int = 64,
                 max_jpeg_bytes: int = 8 << 20, max_pixels: int = 4096 * 4096,
                 detector_id: str = "", scaler: DetectionScaler | None = None, threads: int = 1):
        self.detector, self.model, self.trackers = detector, model, trackers
        self.scaler = scaler  # None: every frame at the detector's own width
        self.masks = masks or {}
        self.max_batch, self.max_jpeg_bytes, self.max_pixels = max_batch, max_jpeg_bytes, max_pixels
        self.detector_id = detector_id
        self.pool = None  # 0 or 1 thread: every stage on the caller's thread, as before
        if threads > 1:
            from detector.overlap import FramePool
            self.pool = FramePool(self, threads)

    def close(self) -> None:
        """Stops the pool's workers once the frames handed to them are done."""
        if self.pool is not None:
            self.pool.close()

    def warm_up(self, width: int = 640, height: int = 360) -> float:
        """Run each stage once on a synthetic frame before the first real one, so that
        frame does not pay for first-call allocations: the JPEG decoder, the face detector
        at a typical detection size, a face crop and the model at batch 1 and max_batch.
        Touches no tracker or scaler state. Returns the seconds it took."""
        start = time.perf_counter()
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (height, width, 3), np.uint8)
        ok, encoded = cv2.imencode(".jpg", frame)
        if ok:
            cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        self.detector.detect(frame)
        side = min(width, height) // 2
        crop_face(frame, FaceBox(side // 2, side // 2, side, side, 1.0), self.detector.geometry,
                  self.model.size)
        self.model.warm_up(tuple(sorted({1, self.max_batch})))
        return time.perf_counter() - start

    def decode(self, jpeg: bytes | None, headers: FrameHeaders) -> np.ndarray:
        """Checks sizes (bytes, the headers' word, then the JPEG's own header) before the
        decoder allocates anything: see detector/jpeg.py for why."""
        self.check(jpeg, headers)
        return self.decode_checked(jpeg)

    def check(self, jpeg: bytes | None, headers: FrameHeaders) -> None:
        """Raises PoisonFrame for a frame too big or not a usable JPEG, from its header only."""
        if not jpeg:
            raise PoisonFrame("empty frame")
        if len(jpeg) > self.max_jpeg_bytes:
            raise PoisonFrame(f"oversized frame: {len(jpeg)} bytes > {self.max_jpeg_bytes}")
        if headers.width * headers.height > self.max_pixels:
            raise PoisonFrame(f"oversized frame: {headers.width}x{headers.height} (headers)")
        try:
            header = read_jpeg_header(jpeg)
        except JpegHeaderError as exc:
            raise PoisonFrame(str(exc)) from None
        if header.pixels > self.max_pixels:
            raise PoisonFrame(f"oversized frame: {header.width}x{header.height} (JPEG header) "
                              f"> {self.max_pixels} pixels")

    def decode_checked(self, jpeg: bytes) -> np.ndarray:
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if frame is None or frame.size == 0:
            raise PoisonFrame("corrupt frame: not a decodable JPEG")
        if frame.shape[0] * frame.shape[1] > self.max_pixels:  # cannot happen past the header
            raise PoisonFrame(f"oversized frame: {frame.shape[1]}x{frame.shape[0]}")
        return frame

    def prepare(self, jpeg: bytes | None, headers: FrameHeaders, source: Any = None) -> PendingFrame:
        """Everything up to the emotion call; raises PoisonFrame for unusable input.

        Pooled, it raises only what the JPEG's header shows; a frame that then fails to
        decode or detect raises from wait() (and so from message())."""
        if self.pool is not None:
            self.check(jpeg, headers)
            return self.pool.submit(jpeg, headers, source)
        start = time.perf_counter()
        frame = self.decode(jpeg, headers)
        decode_ms = _ms(start)
        return self.prepare_decoded(frame, headers, source, decode_ms)

    def prepare_decoded(self, frame: np.ndarray, headers: FrameHeaders, source: Any = None,
                        decode_ms: float = 0.0) -> PendingFrame:
        start = time.perf_counter()
        height, width = frame.shape[:2]
        boxes = self.detect(frame, self.detection_width(headers, width))
        kept, tracks = self.settle(frame, headers, boxes)
        return PendingFrame(headers, width, height, kept, tracks, self.crops(frame, kept),
                            len(boxes) - len(kept), decode_ms, _ms(start), source)

    # The steps of prepare_decoded(), which the pool runs apart: detection_width() and
    # settle() change per-camera state (the pool calls them in each camera's frame order),
    # detect() and crops() change nothing.

    def detection_width(self, headers: FrameHeaders, frame_width: int) -> int | None:
        """This frame's detection width; None: the detector's own (no scaler, or a still
        image: the scaler assumes the last frame's faces are near)."""
        if not self.scaled(headers):
            return None
        return self.scaler.width_for(headers.camera_id, frame_width)

    def scaled(self, headers: FrameHeaders) -> bool:
        """Whether this frame's detection width depends on the camera's previous frame."""
        return self.scaler is not None and not headers.still

    def detect(self, frame: np.ndarray, width: int | None) -> list[FaceBox]:
        return self.detector.detect(frame) if width is None else self.detector.detect(frame, width)

    def settle(self, frame: np.ndarray, headers: FrameHeaders,
               boxes: list[FaceBox]) -> tuple[list[FaceBox], list[Track]]:
        """The faces kept past the camera's mask, and their tracks."""
        if self.scaled(headers):
            self.scaler.observe(headers.camera_id, boxes)  # masked faces too: they are in view
        height, width = frame.shape[:2]
        mask = self.masks.get(headers.camera_id)
        kept = [b for b in boxes if mask is None or not mask.excludes(*b.centre, width, height)]
        # A still image continues nothing: its faces get tracks (and smoothing) of their own.
        tracker = (self.trackers.fresh() if headers.still
                   else self.trackers.for_camera(headers.camera_id))
        return kept, tracker.assign(headers.session_id, headers.capture_ts, kept)

    def crops(self, frame: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
        size = self.model.size
        if not boxes:
            return np.zeros((0, size, size, 1), np.uint8)
        return np.stack([crop_face(frame, b, self.detector.geometry, size) for b in boxes])

    def classify(self, frames: list[PendingFrame]) -> float:
        """One inference call per max_batch crops of all frames; returns its duration (ms).
        Waits for pooled frames; one that failed gets no probabilities (message() raises)."""
        for frame in frames:
            if frame.done is not None:
                frame.done.wait()
        frames = [f for f in frames if f.error is None]
        counts = [len(f.crops) for f in frames]
        if not sum(counts):
            return 0.0
        crops = np.concatenate([f.crops for f in frames if len(f.crops)])
        start = time.perf_counter()
        probs = np.concatenate([self.model.predict(crops[i:i + self.max_batch])
                                for i in range(0, len(crops), self.max_batch)])
        elapsed = _ms(start)
        offset = 0
        for frame, count in zip(frames, counts):
            frame.probs, offset = probs[offset:offset + count], offset + count
        return elapsed

    def messages(self, frames: list[PendingFrame], classify_ms: float) -> list[DetectionMessage]:
        """Detection messages for classified frames, with per-track smoothing applied."""
        return [self.message(f, classify_ms) for f in frames]

    def message(self, frame: PendingFrame, classify_ms: float) -> DetectionMessage:
        frame.wait()
        faces = []
        probs = frame.probs if frame.probs is not None else np.zeros((0, len(EMOTIONS)))
        for box, track, raw in zip(frame.boxes, frame.tracks, probs):
            smoothed = track.smooth(raw, self.trackers.alpha)
            faces.append(Face(box=(box.x, box.y, box.w, box.h), score=round(box.score, 4),
                              track_id=track.track_id, probs=_probs_dict(raw),
                              smoothed=_probs_dict(smoothed)))
        h = frame.headers
        timing = Timing(decode_ms=round(frame.decode_ms, 3), detect_ms=round(frame.detect_ms, 3),
                        classify_ms=round(classify_ms if faces else 0.0, 3),
                        e2e_ms=round(max(0.0, time.time() - h.capture_ts) * 1000.0, 3))
        return DetectionMessage(camera_id=h.camera_id, session_id=h.session_id, seq=h.seq,
                                capture_ts=h.capture_ts, offset_s=h.offset_s, frame_w=frame.frame_w,
                                frame_h=frame.frame_h, faces=faces, excluded_faces=frame.excluded,
                                timing=timing, detector_id=self.detector_id, run_id=h.run_id)

    def skipped_message(self, headers: FrameHeaders, kind: str) -> DetectionMessage:
        """The detection of a dead-lettered frame: no faces, `skipped` says why, so the
        aggregator counts the frame as handled instead of waiting for it."""
        h = headers
        return DetectionMessage(camera_id=h.camera_id, session_id=h.session_id, seq=h.seq,
                                capture_ts=h.capture_ts, offset_s=h.offset_s,
                                detector_id=self.detector_id, run_id=h.run_id, skipped=kind)
