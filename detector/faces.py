"""Face detectors behind one interface, and the crop that turns a box into a model input.

Each backend returns boxes in the pixels of the frame it was given. Large frames are
shrunk for detection only (`downscale`), and boxes are scaled back, so crops are cut
from the full-resolution frame.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from moodstream.faceprep import prepare_image


class DetectorError(ValueError):
    """A face detector that cannot be built (unknown name, missing weights file)."""


@dataclass(frozen=True)
class FaceBox:
    x: int
    y: int
    w: int
    h: int
    score: float  # 0..1

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass(frozen=True)
class CropGeometry:
    """How a detector's box maps to a FER2013-style square crop.

    Measured by running each backend on FER2013 validation faces (upscaled 4x and padded):
    the median box covers `box_w_frac` of the crop's width and `box_h_frac` of its height.
    So the crop side that matches training is w / box_w_frac (and h / box_h_frac).
    Checked with a FER-trained classifier (fer's) on ~575 such faces, two samples
    (`benchmarks/face_detectors.py --crop-margin`): this side scored 0.647 / 0.643, within
    noise of 0.9x and 1.1x (0.628-0.646), clearly above 0.8x and 1.25x (0.592-0.630).
    """

    box_w_frac: float
    box_h_frac: float

    def square(self, box: FaceBox) -> tuple[int, int, int]:
        side = 0.5 * (box.w / self.box_w_frac + box.h / self.box_h_frac)
        cx, cy = box.centre
        return int(round(cx - side / 2)), int(round(cy - side / 2)), max(1, int(round(side)))


class FaceDetector(Protocol):
    name: str
    geometry: CropGeometry

    def detect(self, bgr: np.ndarray, width: int | None = None) -> list[FaceBox]:
        """Faces in full-resolution pixels; `width` overrides the downscale cap."""
        ...


def _shrink(bgr: np.ndarray, max_width: int) -> tuple[np.ndarray, float]:
    """Frame for detection and the factor that maps its pixels back to the original."""
    height, width = bgr.shape[:2]
    if max_width <= 0 or width <= max_width:
        return bgr, 1.0
    scale = width / max_width
    small = cv2.resize(bgr, (max_width, int(round(height / scale))), interpolation=cv2.INTER_AREA)
    return small, scale


def _rescale(boxes: list[FaceBox], scale: float, min_face: int) -> list[FaceBox]:
    out = []
    for b in boxes:
        box = FaceBox(int(round(b.x * scale)), int(round(b.y * scale)),
                      int(round(b.w * scale)), int(round(b.h * scale)), b.score)
        if min(box.w, box.h) >= min_face:
            out.append(box)
    return out


class YuNetDetector:
    """libfacedetection's YuNet (the library from the `yuface` wheel, weights built in),
    called through detector.yunet: the wheel's own binding leaks memory on every call."""

    name = "yunet"
    geometry = CropGeometry(box_w_frac=0.81, box_h_frac=1.03)

    def __init__(self, confidence: float = 0.6, min_face: int = 20, downscale: int = 640):
        # yuface's bundled OpenMP spin-waits: with 2 threads on a busy 2-core host it ran
        # 5x slower than with one (527 vs 96 ms per 640x360 frame). Read once, at load.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from detector.yunet import YuNet, YuNetError  # here, so Haar works without yuface
        try:
            self._yunet = YuNet()
        except YuNetError as exc:
            raise DetectorError(str(exc)) from None
        self.confidence, self.min_face, self.downscale = confidence, min_face, downscale

    def detect(self, bgr: np.ndarray, width: int | None = None) -> list[FaceBox]:
        small, scale = _shrink(bgr, self.downscale if width is None else width)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        rows = self._yunet.detect(small)
        threshold = self.confidence * 100  # as yuface.detect compared (strictly greater)
        found = [FaceBox(int(x), int(y), int(w), int(h), float(c) / 100.0)
                 for c, x, y, w, h in rows if c > threshold and w > 0 and h > 0]
        return _rescale(found, scale, self.min_face)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (the one the `fer` peer uses by default)."""

    name = "haar"
    geometry = CropGeometry(box_w_frac=0.96, box_h_frac=0.96)
    CASCADE = "haarcascade_frontalface_default.xml"

    def __init__(self, min_face: int = 20, downscale: int = 640, cascade: Path | None = None,
                 scale_factor: float = 1.1, min_neighbors: int = 5):
        self._path = Path(cascade) if cascade else Path(cv2.data.haarcascades) / self.CASCADE
        # One cascade per thread: OpenCV does not promise that one object may run
        # detectMultiScale on several threads at once (the detector's pool does).
        self._local = threading.local()
        self._cascade()  # fails here, at start-up, when the file cannot be loaded
        self.min_face, self.downscale = min_face, downscale
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(str(self._path))
            if cascade.empty():
                raise DetectorError(f"cannot load Haar cascade {self._path}")
            self._local.cascade = cascade
        return cascade

    def detect(self, bgr: np.ndarray, width: int | None = None) -> list[FaceBox]:
        small, scale = _shrink(bgr, self.downscale if width is None else width)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        side = max(8, int(self.min_face / scale))
        found = self._cascade().detectMultiScale(grey, self.scale_factor, self.min_neighbors,
                                               minSize=(side, side))
        boxes = [FaceBox(int(x), int(y), int(w), int(h), 1.0) for x, y, w, h in found]
        return _rescale(boxes, scale, self.min_face)


def build_detector(name: str, confidence: float = 0.6, min_face: int = 20,
                   downscale: int = 640) -> FaceDetector:
    if name == "yunet":
        return YuNetDetector(confidence, min_face, downscale)
    if name == "haar":
        return HaarDetector(min_face, downscale)
    raise DetectorError(f"unknown face detector {name!r}; one of yunet, haar")


def crop_face(bgr: np.ndarray, box: FaceBox, geometry: CropGeometry, size: int = 48) -> np.ndarray:
    """The face as training saw it: a square around the box, edge-padded, grey size x size."""
    x, y, side = geometry.square(box)
    height, width = bgr.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + side), min(height, y + side)
    if x1 <= x0 or y1 <= y0:  # a box wholly outside the frame has nothing to show
        return np.zeros((size, size, 1), np.uint8)
    patch = bgr[y0:y1, x0:x1]
    pad = (y0 - y, (y + side) - y1, x0 - x, (x + side) - x1)
    if any(pad):
        patch = cv2.copyMakeBorder(patch, *pad, borderType=cv2.BORDER_REPLICATE)
    return prepare_image(patch, size=size, channels=1)
