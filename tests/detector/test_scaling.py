"""Adaptive detection width: smaller passes while faces are large, full passes on refresh."""

from __future__ import annotations

import cv2

from detector.faces import FaceBox
from detector.scaling import DetectionScaler
from tests.detector.conftest import clip_frames


def test_full_width_without_faces_and_on_every_refresh():
    scaler = DetectionScaler(full_width=640, refresh_frames=3)
    assert scaler.width_for("cam", 640) == 640  # nothing known yet
    scaler.observe("cam", [FaceBox(0, 0, 160, 160, 0.9)])
    widths = []
    for _ in range(6):
        widths.append(scaler.width_for("cam", 640))
        scaler.observe("cam", [FaceBox(0, 0, 160, 160, 0.9)])
    # 160 px face -> 40 px at 160 wide; every third frame is a full pass
    assert widths == [160, 160, 640, 160, 160, 640]


def test_smallest_face_bounds_the_width_and_cameras_are_independent():
    scaler = DetectionScaler(full_width=640, refresh_frames=5)
    scaler.width_for("a", 1280)
    scaler.observe("a", [FaceBox(0, 0, 400, 400, 0.9), FaceBox(0, 0, 80, 80, 0.9)])
    assert scaler.width_for("a", 1280) == 640  # 80 px face: 640 keeps it 40 px wide
    assert scaler.width_for("b", 1280) == 640  # another camera starts with a full pass
    scaler.observe("a", [])
    assert scaler.width_for("a", 1280) == 640  # faces gone: look everywhere again


def test_refresh_of_one_is_always_full_width():
    scaler = DetectionScaler(full_width=0, refresh_frames=1)
    scaler.observe("cam", [FaceBox(0, 0, 300, 300, 0.9)])
    assert [scaler.width_for("cam", 1920) for _ in range(3)] == [1920] * 3


def test_reduced_passes_keep_the_single_face(yunet):
    scaler = DetectionScaler(full_width=640, refresh_frames=5)
    frames = clip_frames("single_face_smile.mp4", 2)
    widths, counts = [], []
    for frame in frames:
        widths.append(scaler.width_for("cam", frame.shape[1]))
        boxes = yunet.detect(frame, widths[-1])
        scaler.observe("cam", boxes)
        counts.append(len(boxes))
    assert counts == [1] * len(frames), counts
    assert sum(w < 320 for w in widths) >= 0.7 * len(frames), widths


def test_a_new_small_face_is_found_by_the_next_full_pass(yunet):
    """The documented trade-off: a face too small for the reduced width waits for a refresh."""
    frame = clip_frames("single_face_smile.mp4", 4)[0].copy()
    (big,) = yunet.detect(frame)
    side = 2 * big.w
    top, left = max(0, big.y - big.h // 2), max(0, big.x - big.w // 2)
    face = frame[top:big.y + 3 * big.h // 2, left:left + side]
    small = cv2.resize(face, (side // 5, side * face.shape[0] // face.shape[1] // 5))
    x0 = 20 if big.x > frame.shape[1] // 2 else frame.shape[1] - small.shape[1] - 20
    frame[20:20 + small.shape[0], x0:x0 + small.shape[1]] = small
    assert len(yunet.detect(frame)) == 2  # at full width both faces are there
    scaler = DetectionScaler(full_width=640, refresh_frames=4)
    scaler.width_for("cam", 640)
    scaler.observe("cam", [big])
    counts = []
    for _ in range(4):
        boxes = yunet.detect(frame, scaler.width_for("cam", 640))
        scaler.observe("cam", boxes)
        counts.append(len(boxes))
    assert counts[-1] == 2 and min(counts) >= 1, counts


def test_pipeline_with_scaler_keeps_one_tracked_face_per_frame(yunet, emotion_model):
    from detector.pipeline import FramePipeline
    from detector.tracking import Trackers
    from moodstream.schemas import FrameHeaders
    from tests.detector.conftest import jpeg
    pipeline = FramePipeline(yunet, emotion_model, Trackers(),
                             scaler=DetectionScaler(full_width=640, refresh_frames=5))
    frames = [pipeline.prepare(jpeg(f), FrameHeaders("cam", "s", i, i / 12.5, i / 12.5))
              for i, f in enumerate(clip_frames("single_face_smile.mp4", 2))]
    assert [len(f.boxes) for f in frames] == [1] * len(frames)
    assert len({f.tracks[0].track_id for f in frames}) == 1
