"""A still frame (FrameHeaders.still: one of a folder of photos) continues nothing: it is
detected at full width and its faces get tracks of their own, unlike a video's frames."""

from __future__ import annotations

import cv2
import numpy as np

from detector.pipeline import FramePipeline
from detector.scaling import DetectionScaler
from detector.tracking import Trackers
from moodstream.schemas import FrameHeaders
from tests.detector.conftest import clip_frames, jpeg

T0 = 1_700_000_000.0


def headers(seq: int, still: bool) -> FrameHeaders:
    return FrameHeaders("cam", "cam-s1", seq, T0 + 0.1 * seq, float(seq), run_id="r", still=still)


def pipeline(yunet, emotion_model) -> FramePipeline:
    return FramePipeline(yunet, emotion_model, Trackers(), max_batch=64,
                         scaler=DetectionScaler(640, 8))


def test_a_still_after_a_close_up_is_searched_at_full_width(yunet, emotion_model):
    close_up = jpeg(clip_frames("single_face_smile.mp4")[10])  # one face ~146 px of 640
    crowd = jpeg(cv2.resize(clip_frames("crowd_walk_1080p.mp4")[60], (1280, 720)))
    alone = pipeline(yunet, emotion_model).prepare(crowd, headers(0, still=True))
    as_video, as_stills = pipeline(yunet, emotion_model), pipeline(yunet, emotion_model)
    for pipe, still in ((as_video, False), (as_stills, True)):
        assert len(pipe.prepare(close_up, headers(0, still)).boxes) == 1
    video_boxes = as_video.prepare(crowd, headers(1, still=False)).boxes
    still_boxes = as_stills.prepare(crowd, headers(1, still=True)).boxes
    # The video path detects the next frame at a width chosen for the close-up's big face;
    # a still is searched exactly as if it came first.
    assert still_boxes == alone.boxes and len(still_boxes) >= 3
    assert video_boxes != still_boxes


def test_the_same_face_in_two_stills_is_two_people_with_unsmoothed_emotions(yunet, emotion_model):
    face = jpeg(clip_frames("single_face_smile.mp4")[10])
    for still, same_track in ((False, True), (True, False)):
        pipe = pipeline(yunet, emotion_model)
        frames = [pipe.prepare(face, headers(seq, still)) for seq in range(2)]
        messages = pipe.messages(frames, pipe.classify(frames))
        first, second = (m.faces[0] for m in messages)
        assert (first.track_id == second.track_id) is same_track
        if still:
            assert all(np.isclose(f.smoothed[e], f.probs[e]) for f in (first, second)
                       for e in f.probs)
