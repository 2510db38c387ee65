"""Frame processing without Kafka: decode -> detect -> mask -> track -> crop, then one
batched emotion call for many frames -> one DetectionMessage per frame.

Kept free of Kafka so the benchmark's stage-only run and the tests use the same code
as the service.
"""

from __future__ import annotations

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
    """A detected frame waiting for its batched emotion call. Holds crops, never the frame."""

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


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _probs_dict(values: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), 5) for label, p in zip(EMOTIONS, values)}


class FramePipeline:
    def __init__(self, detector: FaceDetector, model: EmotionModel, trackers: Trackers,
                 masks: dict[str, ExclusionMask] | None = None, max_batch: int = 64,
                 max_jpeg_bytes: int = 8 << 20, max_pixels: int = 4096 * 4096,
                 detector_id: str = "", scaler: DetectionScaler | None = None):
        self.detector, self.model, self.trackers = detector, model, trackers
        self.scaler = scaler  # None: every frame at the detector's own width
        self.masks = masks or {}
        self.max_batch, self.max_jpeg_bytes, self.max_pixels = max_batch, max_jpeg_bytes, max_pixels
        self.detector_id = detector_id

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
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if frame is None or frame.size == 0:
            raise PoisonFrame("corrupt frame: not a decodable JPEG")
        if frame.shape[0] * frame.shape[1] > self.max_pixels:  # cannot happen past the header
            raise PoisonFrame(f"oversized frame: {frame.shape[1]}x{frame.shape[0]}")
        return frame

    def prepare(self, jpeg: bytes | None, headers: FrameHeaders, source: Any = None) -> PendingFrame:
        """Everything up to the emotion call; raises PoisonFrame for unusable input."""
        start = time.perf_counter()
        frame = self.decode(jpeg, headers)
        decode_ms = _ms(start)
        return self.prepare_decoded(frame, headers, source, decode_ms)

    def prepare_decoded(self, frame: np.ndarray, headers: FrameHeaders, source: Any = None,
                        decode_ms: float = 0.0) -> PendingFrame:
        start = time.perf_counter()
        height, width = frame.shape[:2]
        boxes = self._detect(frame, headers.camera_id)
        mask = self.masks.get(headers.camera_id)
        kept = [b for b in boxes if mask is None or not mask.excludes(*b.centre, width, height)]
        tracker = self.trackers.for_camera(headers.camera_id)
        tracks = tracker.assign(headers.session_id, headers.capture_ts, kept)
        geometry = self.detector.geometry
        size = self.model.size
        crops = (np.stack([crop_face(frame, b, geometry, size) for b in kept]) if kept
                 else np.zeros((0, size, size, 1), np.uint8))
        return PendingFrame(headers, width, height, kept, tracks, crops, len(boxes) - len(kept),
                            decode_ms, _ms(start), source)

    def _detect(self, frame: np.ndarray, camera_id: str) -> list[FaceBox]:
        if self.scaler is None:
            return self.detector.detect(frame)
        boxes = self.detector.detect(frame, self.scaler.width_for(camera_id, frame.shape[1]))
        self.scaler.observe(camera_id, boxes)  # masked faces too: they are faces in view
        return boxes

    def classify(self, frames: list[PendingFrame]) -> float:
        """One inference call per max_batch crops of all frames; returns its duration (ms)."""
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
