"""Track ids across frames and per-track smoothing."""

from __future__ import annotations

import time

import numpy as np

from detector.faces import FaceBox
from detector.tracking import CameraTracker, Track, Trackers, TrackIds, iou
from tests.detector.conftest import clip_frames


def test_track_id_is_stable_on_the_single_face_clip(yunet):
    tracker = Trackers().for_camera("cam1")
    ids = []
    for index, frame in enumerate(clip_frames("single_face_smile.mp4", 2)):
        tracks = tracker.assign("s1", index / 15.0, yunet.detect(frame))
        ids.extend(t.track_id for t in tracks)
    assert len(ids) >= 30 and len(set(ids)) == 1


def test_separate_faces_get_separate_ids_and_a_new_session_starts_over():
    tracker = CameraTracker()
    a, b = FaceBox(0, 0, 50, 50, 1.0), FaceBox(200, 0, 50, 50, 1.0)
    first = [t.track_id for t in tracker.assign("s1", 0.0, [a, b])]
    moved = [t.track_id for t in tracker.assign("s1", 0.1, [FaceBox(205, 2, 50, 50, 1.0),
                                                           FaceBox(4, 0, 50, 50, 1.0)])]
    assert first[0] != first[1] and moved == first[::-1]
    assert tracker.assign("s2", 0.2, [a])[0].track_id not in first


def test_a_track_unseen_too_long_is_closed():
    tracker = CameraTracker(max_age_s=1.0)
    box = FaceBox(0, 0, 50, 50, 1.0)
    first = tracker.assign("s", 0.0, [box])[0].track_id
    assert tracker.assign("s", 0.5, [box])[0].track_id == first
    assert tracker.assign("s", 2.0, [box])[0].track_id != first


def test_ema_smoothing_follows_alpha():
    track = Track(1, FaceBox(0, 0, 1, 1, 1.0), 0.0)
    first = track.smooth(np.array([1.0, 0.0]), alpha=0.25)
    second = track.smooth(np.array([0.0, 1.0]), alpha=0.25)
    assert first.tolist() == [1.0, 0.0] and np.allclose(second, [0.75, 0.25])


def test_iou():
    assert iou(FaceBox(0, 0, 10, 10, 1), FaceBox(0, 0, 10, 10, 1)) == 1.0
    assert iou(FaceBox(0, 0, 10, 10, 1), FaceBox(5, 0, 10, 10, 1)) == 50 / 150
    assert iou(FaceBox(0, 0, 10, 10, 1), FaceBox(20, 20, 5, 5, 1)) == 0.0


def test_a_fast_mover_keeps_its_track_through_low_overlap():
    tracker = CameraTracker()
    ids = [tracker.assign("s", i * 0.04, [FaceBox(190 + 26 * i, 470, 62, 86, 1.0)])[0].track_id
           for i in range(12)]  # 26 px per frame at 60 px wide: IoU with the last box ~0.4..0.3
    jump = tracker.assign("s", 0.48, [FaceBox(190 + 26 * 12 + 10, 470, 62, 86, 1.0)])[0]
    assert len(set(ids)) == 1 and jump.track_id == ids[0]


def test_a_far_away_face_of_another_size_is_a_new_track():
    tracker = CameraTracker()
    ids = [tracker.assign("s", 0.0, [FaceBox(100, 100, 60, 80, 1.0)])[0].track_id,
           tracker.assign("s", 0.04, [FaceBox(400, 100, 60, 80, 1.0)])[0].track_id,
           tracker.assign("s", 0.08, [FaceBox(405, 100, 200, 260, 1.0)])[0].track_id]
    assert len(set(ids)) == 3


def test_the_centre_fallback_ranks_below_any_overlap():
    from detector.tracking import affinity
    a = FaceBox(0, 0, 60, 80, 1.0)
    assert affinity(a, FaceBox(0, 0, 60, 80, 1.0), 0.3, 1.0) == 1.0
    near = affinity(a, FaceBox(40, 0, 60, 80, 1.0), 0.3, 1.0)
    assert 0.0 < near < 0.3 and affinity(a, FaceBox(300, 0, 60, 80, 1.0), 0.3, 1.0) == 0.0


def test_track_ids_of_two_processes_never_meet_and_fit_53_bits():
    # Two detector processes continuing the same cameras (a rebalance, a restart): with ids
    # restarting at 1 each would call different people 1, 2, ... and merge them.
    boxes = [FaceBox(100 * i, 0, 50, 50, 1.0) for i in range(5)]
    ids = []
    for _process in range(2):
        trackers = Trackers()
        for camera in ("cam1", "cam2"):
            ids += [t.track_id for t in trackers.for_camera(camera).assign("s1", 0.0, boxes)]
    assert len(set(ids)) == len(ids) == 20
    assert all(1 << TrackIds.COUNTER_BITS <= i < 1 << 53 for i in ids)


def test_a_used_up_counter_draws_a_new_prefix():
    ids = TrackIds(counter_bits=2)
    drawn = [ids.next() for _ in range(12)]
    assert len(set(drawn)) == 12
    prefixes = [i >> 2 for i in drawn]
    assert [prefixes[k:k + 4].count(prefixes[k]) for k in (0, 4, 8)] == [4, 4, 4]
    assert all(0 < p < 1 << 31 for p in prefixes)


def test_detections_carry_the_unique_ids_as_schema_valid_ints():
    from moodstream.schemas import DetectionMessage, Face
    track_id = TrackIds().next()
    face = Face(box=(0, 0, 10, 10), score=0.9, track_id=track_id,
                probs={e: 1 / 7 for e in ("angry", "disgust", "fear", "happy", "neutral", "sad",
                                          "surprise")})
    message = DetectionMessage(camera_id="c", session_id="s", seq=0, capture_ts=time.time(),
                               offset_s=0.0, faces=[face], run_id="r1")
    parsed = DetectionMessage.from_bytes(message.to_bytes())
    assert parsed.faces[0].track_id == track_id and parsed.run_id == "r1"
