"""Video files: real-time vs as-fast-as-possible pacing, sampling counts, multi-camera files."""

from __future__ import annotations

import pytest

from ingest.config import CameraConfig, PacingMode
from tests.conftest import VIDEOS, require
from tests.ingest.helpers import RunningIngest, read_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMILE = VIDEOS / "single_face_smile.mp4"  # 72 frames at 30 fps: 2.4 s


def ingest_file(kafka_server, prefix: str, mode: PacingMode, fps: float):
    camera = CameraConfig(id="file", url=str(require(SMILE)), fps=fps, mode=mode)
    with RunningIngest(kafka_server.bootstrap, prefix, [camera]) as ingest:
        assert ingest.wait_done(30) == 0
    got = read_topics(kafka_server.bootstrap, prefix, lambda g: g.complete())
    span_s = (max(got.frame_times_ms) - min(got.frame_times_ms)) / 1000
    return got, span_s, ingest.counts("file")


@pytest.mark.parametrize("fps, expected", [(10, 24), (7.5, 18), (0, 72)])
def test_realtime_file_is_paced_by_media_time(kafka_server, unique_prefix, fps, expected):
    got, span_s, counts = ingest_file(kafka_server, unique_prefix, PacingMode.REALTIME, fps)
    assert (counts.read, len(got.frames), counts.dropped_total) == (72, expected, 0)
    last_offset = max(h.offset_s for _, h, _ in got.frames)
    # Frames leave at their media times: the first-to-last spread matches the clip.
    assert last_offset - 0.15 <= span_s <= last_offset + 1.0, (span_s, last_offset)
    assert got.ends()[0].frames_published == expected


def test_fast_file_samples_the_same_frames_without_waiting(kafka_server, unique_prefix):
    got, span_s, counts = ingest_file(kafka_server, unique_prefix, PacingMode.FAST, 10)
    assert (counts.read, len(got.frames), counts.dropped_total) == (72, 24, 0)
    offsets = sorted(h.offset_s for _, h, _ in got.frames)
    assert offsets == pytest.approx([i / 10 for i in range(24)], abs=0.02)
    assert span_s < 1.5  # real time would take 2.3 s


def test_two_file_cameras_in_one_process_each_get_a_session(kafka_server, unique_prefix):
    cameras = [CameraConfig(id=cam, url=str(require(VIDEOS / clip)), fps=0, mode=PacingMode.FAST)
               for cam, clip in (("a", "single_face_smile.mp4"), ("b", "no_face.mp4"))]
    with RunningIngest(kafka_server.bootstrap, unique_prefix, cameras) as ingest:
        assert ingest.wait_done(30) == 0
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete(2))
    ends = {e.camera_id: e.frames_published for e in got.ends()}
    decodable = {"a": 72, "b": 95}  # no_face.mp4 claims 98 frames; 95 decode
    assert ends == decodable == {cam: ingest.counts(cam).read for cam in ("a", "b")}
    per_camera = {key.decode(): sum(1 for k, _, _ in got.frames if k == key) for key in (b"a", b"b")}
    assert per_camera == decodable


def test_a_sampled_file_converts_only_the_frames_it_keeps(kafka_server, unique_prefix, monkeypatch):
    """Every frame is grabbed (decoded), but only a kept one is retrieved (converted to
    BGR): a camera sampled at a fraction of its rate pays the conversion for that fraction."""
    import cv2
    retrieved = []
    real_capture = cv2.VideoCapture

    class CountingCapture:
        def __init__(self, *args):
            self._capture = real_capture(*args)

        def __getattr__(self, name):
            return getattr(self._capture, name)

        def retrieve(self, *args):
            retrieved.append(1)
            return self._capture.retrieve(*args)

    monkeypatch.setattr(cv2, "VideoCapture", CountingCapture)
    got, _span_s, counts = ingest_file(kafka_server, unique_prefix, PacingMode.FAST, 10)
    assert (counts.read, len(got.frames)) == (72, 24)
    assert len(retrieved) == 24
