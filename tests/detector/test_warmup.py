"""Warm-up: the detector runs every stage once before the first frame, without leaving a
trace in per-camera state."""

from __future__ import annotations

import time

from detector.pipeline import FramePipeline
from detector.scaling import DetectionScaler
from detector.tracking import Trackers
from moodstream.schemas import FrameHeaders
from tests.detector.conftest import clip_frames, jpeg


def test_warm_up_runs_each_stage_and_leaves_no_camera_state(yunet, emotion_model):
    trackers, scaler = Trackers(), DetectionScaler(640, 8)
    pipeline = FramePipeline(yunet, emotion_model, trackers, max_batch=8, scaler=scaler)
    calls = emotion_model.calls
    seconds = pipeline.warm_up()
    assert seconds > 0
    assert len(trackers._cameras) == 0 and len(scaler._cameras) == 0
    assert (scaler.full_width, scaler.refresh_frames) == (640, 8)
    assert emotion_model.calls == calls  # warm-up calls are not counted as real ones
    # The first real frame after it goes through as usual.
    frame = clip_frames("single_face_smile.mp4", 12)[0]
    headers = FrameHeaders("cam", "s", 0, time.time(), 0.0, *frame.shape[1::-1])
    pending = pipeline.prepare(jpeg(frame), headers)
    pipeline.classify([pending])
    message = pipeline.message(pending, 0.0)
    assert len(message.faces) == 1 and message.faces[0].track_id is not None
