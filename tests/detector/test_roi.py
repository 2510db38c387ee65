"""Privacy masks from the cameras file: excluded faces never reach the model."""

from __future__ import annotations

import pytest

from detector.pipeline import FramePipeline
from detector.roi import ExclusionMask, load_masks
from detector.tracking import Trackers
from moodstream.schemas import FrameHeaders
from moodstream.settings import SettingsError
from tests.detector.conftest import clip_frames, jpeg

CAMERAS_YAML = """
cameras:
  - id: counter
    url: rtsp://example/counter
    roi:                      # staff side of the counter: the left half of the picture
      - [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]
  - id: door
    url: rtsp://example/door
"""


def test_cameras_file_gives_masks_for_cameras_with_roi(tmp_path):
    path = tmp_path / "cameras.yaml"
    path.write_text(CAMERAS_YAML)
    masks = load_masks(path)
    assert set(masks) == {"counter"}
    assert masks["counter"].excludes(100, 50, 640, 360)
    assert not masks["counter"].excludes(500, 50, 640, 360)


def test_pixel_polygons_and_toml(tmp_path):
    path = tmp_path / "cameras.toml"
    path.write_text('[[cameras]]\nid = "c"\nroi = [[[0, 0], [100, 0], [100, 100]]]\n')
    mask = load_masks(path)["c"]
    assert mask.excludes(60, 10, 1920, 1080) and not mask.excludes(10, 60, 1920, 1080)


@pytest.mark.parametrize("text, message", [
    ("cameras: 3", "expected a `cameras` list"),
    ("cameras:\n  - id: a\n    roi: [[[0, 0], [1, 1]]]", "at least 3 points"),
    ("cameras:\n  - id: a\n    roi: [[1, 2, 3]]", "list of \\[x, y\\] points"),
    ("cameras: [", "is not valid"),
])
def test_bad_cameras_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_masks(path)


def test_mask_excludes_the_face_before_classification(yunet, emotion_model):
    masks = {"counter": ExclusionMask([[(0, 0), (1, 0), (1, 1), (0, 1)]])}
    pipeline = FramePipeline(yunet, emotion_model, Trackers(), masks)
    frame = jpeg(clip_frames("single_face_smile.mp4", 4)[0])
    masked = pipeline.prepare(frame, FrameHeaders("counter", "s1", 0, 0.0, 0.0))
    open_cam = pipeline.prepare(frame, FrameHeaders("door", "s1", 0, 0.0, 0.0))
    calls = emotion_model.calls
    pipeline.classify([masked])
    assert emotion_model.calls == calls  # nothing left to classify
    message = pipeline.messages([masked], 0.0)[0]
    assert message.faces == [] and message.excluded_faces == 1
    assert len(open_cam.crops) == 1 and open_cam.excluded == 0
