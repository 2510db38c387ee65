"""The direct libfacedetection call finds what the yuface binding finds, without its leak."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest

from detector.yunet import YuNet

CLIP = Path(__file__).resolve().parents[3] / "shared" / "videos" / "single_face_smile.mp4"


@pytest.fixture(scope="module")
def frame():
    ok, img = cv2.VideoCapture(str(CLIP)).read()
    assert ok, f"cannot read {CLIP}"
    return img


def test_same_faces_as_the_yuface_binding(frame):
    import yuface
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        confs, boxes, _ = yuface.detect(frame, 0.5)
    rows = YuNet().detect(frame)
    rows = rows[rows[:, 0] > 50]
    assert len(rows) == len(confs) == 1
    np.testing.assert_array_equal(rows[:, 0], confs.astype(int))
    np.testing.assert_array_equal(rows[:, 1:], boxes.astype(int))


def test_no_memory_grows_per_call(frame):
    yunet, proc = YuNet(), psutil.Process()
    for _ in range(20):
        yunet.detect(frame)
    before = proc.memory_info().rss
    for _ in range(300):
        yunet.detect(frame)
    per_call = (proc.memory_info().rss - before) / 300
    assert per_call < 2048, f"{per_call:.0f} bytes per call (the yuface binding leaked ~36 KB)"


def test_blank_and_wrong_images(frame):
    assert YuNet().detect(np.zeros((120, 160, 3), np.uint8)).shape == (0, 5)
    with pytest.raises(ValueError):
        YuNet().detect(frame[..., 0])
