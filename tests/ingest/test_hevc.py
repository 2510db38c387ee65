"""HEVC (H.265) files, made from a shared clip with ffmpeg/libx265 at test time: the reader
decodes them in every container, and ingest publishes their frames to a real broker."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ingest.config import CameraConfig, PacingMode
from ingest.source import SourceState, check_file
from tests.conftest import VIDEOS, require
from tests.ingest.ffmpeg_clips import encode_hevc, probe_codec
from tests.ingest.helpers import RunningIngest, read_topics
from tests.ingest.test_containers import read_all

SMILE = VIDEOS / "single_face_smile.mp4"  # 640x360, 72 frames at 30 fps


def first_frame(path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    ok, image = capture.read()
    capture.release()
    assert ok, f"cannot decode {path}"
    return image


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_hevc_files_are_read_whole_with_media_time(tmp_path, suffix):
    path = encode_hevc(require(SMILE), tmp_path / f"smile_hevc{suffix}")
    assert probe_codec(path) == "hevc"
    assert check_file(str(path)) is None
    frames, states = read_all(str(path))
    assert len(frames) == 72
    assert [f.media_s for f in frames] == pytest.approx([i / 30 for i in range(72)], abs=2e-3)
    assert frames[0].image.shape == (360, 640, 3)
    assert states == [SourceState.CONNECTING, SourceState.STREAMING, SourceState.ENDED]


@pytest.mark.integration
def test_hevc_file_frames_reach_kafka_with_headers(kafka_server, unique_prefix, tmp_path):
    path = encode_hevc(require(SMILE), tmp_path / "smile_hevc.mp4")
    camera = CameraConfig(id="hevc-cam", url=str(path), fps=10, mode=PacingMode.FAST,
                          session={"id": "hevc-1"})
    with RunningIngest(kafka_server.bootstrap, unique_prefix, [camera]) as ingest:
        assert ingest.wait_done(30) == 0
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete())
    counts = ingest.counts("hevc-cam")
    assert (counts.read, counts.published, counts.dropped_total) == (72, 24, 0)
    headers = sorted((h for _, h, _ in got.frames), key=lambda h: h.seq)
    assert [h.seq for h in headers] == list(range(24))
    assert {(k, h.camera_id, h.session_id, h.width, h.height) for k, h, _ in got.frames} == \
        {(b"hevc-cam", "hevc-cam", "hevc-1", 640, 360)}
    assert [h.offset_s for h in headers] == pytest.approx([i / 10 for i in range(24)], abs=0.02)
    [start, end] = got.control
    assert (start.type, end.type, end.frames_published) == ("session_start", "session_end", 24)
    # The published JPEG is the clip's picture, not a mis-decoded one: frame 0 matches the
    # original H.264 decode to within codec noise.
    first = next(jpeg for _, h, jpeg in got.frames if h.seq == 0)
    published = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
    original = first_frame(SMILE)
    assert published.shape == original.shape
    assert np.abs(published.astype(int) - original.astype(int)).mean() < 6
