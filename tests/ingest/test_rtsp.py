"""An RTSP camera (GStreamer's RTSP server fed from a shared clip): frames reach Kafka with
correct headers, and the end of the served clip is handled as a lost stream."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ingest.config import CameraConfig
from ingest.source import SourceState
from moodstream.embedded import free_port
from tests.conftest import VIDEOS, require
from tests.ingest.helpers import RunningIngest, read_topics, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
DEBIAN_PACKAGES = ("python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp "
                   "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad")


@pytest.fixture
def rtsp_camera():
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version("
                            "'GstRtspServer', '1.0'); from gi.repository import GstRtspServer"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"the RTSP test server needs Debian packages: apt-get install {DEBIAN_PACKAGES}")
    port = free_port()
    proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(port),
                             str(require(VIDEOS / "single_face_smile.mp4"))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stdout.read()
        yield f"rtsp://viewer:s3cret@127.0.0.1:{port}/cam"
    finally:
        proc.terminate()
        proc.wait(10)


def test_rtsp_frames_reach_kafka_with_headers(kafka_server, unique_prefix, rtsp_camera):
    cam = CameraConfig(id="entrance", url=rtsp_camera, fps=0, session={"id": "rtsp-1"})
    started = time.time()
    with RunningIngest(kafka_server.bootstrap, unique_prefix, [cam], backoff_initial_s=0.2,
                       backoff_max_s=1.0) as ingest:
        counts = ingest.counts("entrance")
        # The served clip is 72 frames long; then the stream ends and ingest reconnects.
        assert wait_until(lambda: counts.reconnects >= 1 and counts.published >= 80, 30), counts
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete())
    headers = sorted((h for _, h, _ in got.frames), key=lambda h: h.seq)
    assert [h.seq for h in headers] == list(range(len(headers))) and len(headers) >= 80
    assert {(h.camera_id, h.session_id, h.width, h.height) for h in headers} == \
        {("entrance", "rtsp-1", 640, 360)}
    assert all(started - 1 < h.capture_ts < time.time() for h in headers)  # host clock
    offsets = [h.offset_s for h in headers]
    assert offsets == sorted(offsets) and offsets[-1] > 2.0  # wall seconds since session start
    states = ingest.metrics.states("entrance")
    assert states[:2] == [SourceState.CONNECTING, SourceState.STREAMING]
    assert SourceState.RECONNECTING in states
    [start, end] = got.control
    assert start.source == end.source == rtsp_camera.replace("viewer:s3cret", "***")
    assert end.frames_published == len(headers)
