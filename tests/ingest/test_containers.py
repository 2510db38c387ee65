"""The reader on real files in the containers cameras and recorders write: AVI, MKV, MOV, MP4."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from ingest.config import CameraConfig, PacingMode
from ingest.sampling import SENTINEL, DropPolicy, FrameQueue
from ingest.source import FrameReader, ReaderTuning, SourceState, check_file
from tests.conftest import VIDEOS, require


def write_clip(path, fourcc: str, frames: int = 20, fps: float = 10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (96, 64))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} into {path.suffix}"
    for i in range(frames):
        writer.write(np.full((64, 96, 3), i * 10, np.uint8))
    writer.release()


def read_all(url: str, fps: float = 0, loop: bool = False, limit: int = 1000):
    camera = CameraConfig(id="c", url=url, fps=fps, mode=PacingMode.FAST, loop=loop)
    stop, states = threading.Event(), []
    queue = FrameQueue(4, DropPolicy.WAIT, stop)
    reader = FrameReader(camera, queue, stop, ReaderTuning(), on_status=states.append,
                         on_read=lambda: None, on_dropped=lambda n: None,
                         on_reconnect=lambda: None)
    reader.start()
    frames = []
    while (item := queue.get(timeout=10)) is not SENTINEL:
        frames.append(item)
        if len(frames) >= limit:
            stop.set()
    reader.join(10)
    return frames, [s.state for s in states]


@pytest.mark.parametrize("suffix, fourcc", [(".avi", "MJPG"), (".mkv", "XVID"), (".mov", "mp4v")])
def test_containers_are_read_with_media_time(tmp_path, suffix, fourcc):
    path = tmp_path / f"clip{suffix}"
    write_clip(path, fourcc)
    assert check_file(str(path)) is None
    frames, states = read_all(str(path))
    assert len(frames) == 20
    assert [round(f.media_s, 3) for f in frames] == [round(i / 10, 3) for i in range(20)]
    assert states == [SourceState.CONNECTING, SourceState.STREAMING, SourceState.ENDED]


def test_loop_keeps_media_time_growing_and_sampling_applies():
    frames, states = read_all(str(require(VIDEOS / "single_face_smile.mp4")), fps=5, loop=True,
                              limit=30)  # 2.4 s clip at 5 fps: 12 per pass, so it looped
    times = [f.media_s for f in frames]
    assert times == sorted(times) and times[-1] > 5.0
    gaps = np.diff(times)
    assert gaps.min() >= 0.19 and gaps.max() <= 0.25  # 5 fps across the loop seams too
    assert states.count(SourceState.STREAMING) == 1 and states[-1] is SourceState.ENDED
