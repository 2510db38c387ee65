"""Detector fixtures: the emotion model and decoded clips are loaded once per session."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, VIDEOS, require

MODEL = REPO / "models" / "emotion.keras"


@functools.lru_cache(maxsize=8)
def clip_frames(name: str, step: int = 1) -> tuple[np.ndarray, ...]:
    """Every `step`-th frame of a shared test clip, decoded once per session."""
    capture = cv2.VideoCapture(str(require(VIDEOS / name)))
    frames, index = [], 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(frame)
            index += 1
    finally:
        capture.release()
    assert frames, f"no frames decoded from {name}"
    return tuple(frames)


def jpeg(frame: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


@pytest.fixture(scope="session")
def emotion_model():
    from detector.classifier import EmotionModel
    model = EmotionModel(require(MODEL))
    model.warm_up((1, 8))
    return model


@pytest.fixture(scope="session")
def yunet():
    from detector.faces import build_detector
    return build_detector("yunet")
