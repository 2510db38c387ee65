"""Face detection on the shared real clips, and the crop geometry."""

from __future__ import annotations

import numpy as np
import pytest

from detector.faces import CropGeometry, FaceBox, HaarDetector, build_detector, crop_face, DetectorError
from tests.detector.conftest import clip_frames


def test_single_face_clip_has_one_face_in_nearly_every_frame(yunet):
    frames = clip_frames("single_face_smile.mp4", 4)
    counts = [len(yunet.detect(f)) for f in frames]
    assert sum(c == 1 for c in counts) >= 0.9 * len(frames), counts


def test_no_face_clip_has_no_faces(yunet):
    frames = clip_frames("no_face.mp4", 6)
    assert [len(yunet.detect(f)) for f in frames] == [0] * len(frames)


@pytest.mark.slow
def test_crowd_clip_has_several_faces_at_1080p(yunet):
    frames = clip_frames("crowd_walk_1080p.mp4", 15)
    counts = [len(yunet.detect(f)) for f in frames]
    assert max(counts) >= 3 and np.mean(counts) >= 2, counts
    assert all(frames[0].shape[1] == 1920 for _ in counts)


def test_haar_backend_finds_the_single_face():
    haar = build_detector("haar")
    frames = clip_frames("single_face_smile.mp4", 12)
    assert all(len(haar.detect(f)) >= 1 for f in frames)


def test_min_face_drops_small_boxes(yunet):
    frame = clip_frames("single_face_smile.mp4", 4)[0]
    big = build_detector("yunet", min_face=400)
    assert yunet.detect(frame) and not big.detect(frame)


def test_downscale_keeps_boxes_in_full_resolution_pixels():
    frame = clip_frames("single_face_smile.mp4", 4)[0]
    full = build_detector("yunet", downscale=0).detect(frame)[0]
    half = build_detector("yunet", downscale=320).detect(frame)[0]
    assert abs(full.x - half.x) < 12 and abs(full.w - half.w) < 0.15 * full.w


def test_unknown_backend_and_bad_cascade_are_clear_errors(tmp_path):
    with pytest.raises(DetectorError, match="unknown face detector"):
        build_detector("mtcnn2")
    with pytest.raises(DetectorError, match="cannot load Haar cascade"):
        HaarDetector(cascade=tmp_path / "missing.xml")


def test_crop_is_a_square_around_the_box_and_pads_at_the_edge():
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[40:60, 40:60] = 255
    geometry = CropGeometry(1.0, 1.0)
    crop = crop_face(frame, FaceBox(40, 40, 20, 20, 1.0), geometry, size=48)
    assert crop.shape == (48, 48, 1) and crop.dtype == np.uint8 and crop.min() == 255
    edge = crop_face(frame, FaceBox(-10, -10, 30, 30, 1.0), geometry, size=48)
    assert edge.shape == (48, 48, 1)
    assert geometry.square(FaceBox(10, 10, 20, 40, 1.0)) == (5, 15, 30)  # centre (20, 30), side mean(20, 40)
