"""Live sources on real servers: an HTTP MJPEG camera killed and restarted, dead and hung
cameras next to a healthy one, and the metrics/health endpoint."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from ingest.config import CameraConfig
from ingest.source import SourceState
from moodstream.embedded import free_port
from tests.conftest import VIDEOS, require
from tests.ingest.helpers import MjpegServer, RunningIngest, clip_jpegs, read_topics, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST_RECONNECT = dict(backoff_initial_s=0.2, backoff_max_s=1.0, stall_timeout_s=2.0,
                      open_timeout_s=1.0)


@pytest.fixture(scope="module")
def jpegs():
    return clip_jpegs(require(VIDEOS / "single_face_smile.mp4"))


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_mjpeg_camera_killed_mid_stream_reconnects_and_resumes(kafka_server, unique_prefix,
                                                               jpegs):
    camera = MjpegServer(jpegs, fps=15).start()
    metrics_port = free_port()
    # every_s 0: a test that crosses the top of the hour must not see the hourly roll-over.
    cam = CameraConfig(id="http-cam", url=camera.url, fps=5, session={"every_s": 0})
    try:
        with RunningIngest(kafka_server.bootstrap, unique_prefix, [cam],
                           metrics_port=metrics_port, **FAST_RECONNECT) as ingest:
            counts = ingest.counts("http-cam")
            assert wait_until(lambda: counts.published >= 5, 15), ingest.metrics.events
            camera.stop()  # the camera dies mid-stream
            assert wait_until(lambda: counts.reconnects >= 2, 10)
            assert counts.state is SourceState.RECONNECTING and ingest.alive()
            published_during_outage = counts.published
            camera.start()  # same port, as a rebooted camera would
            assert wait_until(lambda: counts.state is SourceState.STREAMING, 5)
            assert wait_until(lambda: counts.published >= published_during_outage + 5, 10)

            status, text = get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert status == 200
            assert 'ingest_source_state{camera="http-cam",ingest_source_state="streaming"} 1.0' in text
            assert f'ingest_reconnects_total{{camera="http-cam"}} {counts.reconnects}.0' in text
            assert 'ingest_publish_latency_seconds_count{camera="http-cam"}' in text
            status, body = get(f"http://127.0.0.1:{metrics_port}/healthz")
            health = json.loads(body)
            assert (status, health["cameras"]) == (200, {"http-cam": "streaming"})
            assert 0 <= health["last_frame_age_s"]["http-cam"] < 1.0
    finally:
        camera.stop()
    states = ingest.metrics.states("http-cam")
    assert states[:2] == [SourceState.CONNECTING, SourceState.STREAMING]
    assert SourceState.RECONNECTING in states and states[-1] is SourceState.ENDED
    assert camera.connections >= 2
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete())
    [end] = got.ends()  # one session: the outage was shorter than the session gap
    assert end.reason == "shutdown" and end.frames_published == len(got.frames)
    assert [h.seq for _, h, _ in sorted(got.frames, key=lambda f: f[1].seq)] == \
        list(range(len(got.frames)))


def test_dead_and_hung_cameras_do_not_stop_a_healthy_one(kafka_server, unique_prefix, jpegs,
                                                         caplog):
    healthy = MjpegServer(jpegs, fps=15).start()
    hung = socket.socket()  # accepts connections, never answers
    hung.bind(("127.0.0.1", 0))
    hung.listen()
    cameras = [
        CameraConfig(id="dead", url=f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/live"),
        CameraConfig(id="hung", url=f"http://127.0.0.1:{hung.getsockname()[1]}/video"),
        CameraConfig(id="ok", url=healthy.url, fps=10),
    ]
    caplog.set_level("INFO")
    try:
        with RunningIngest(kafka_server.bootstrap, unique_prefix, cameras,
                           reconnect_max_attempts=3, metrics_port=free_port(),
                           **FAST_RECONNECT) as ingest:
            dead, hang, ok = (ingest.counts(c) for c in ("dead", "hung", "ok"))
            assert wait_until(lambda: dead.state is SourceState.FAILED, 15)
            assert dead.reconnects == 3  # bounded: gave up after the configured attempts
            assert wait_until(lambda: ok.published >= 20, 10) and ok.state is SourceState.STREAMING
            assert wait_until(lambda: hang.state is SourceState.FAILED, 20)
            status, body = get(f"http://127.0.0.1:{ingest.settings.metrics_port}/healthz")
            assert status == 200 and json.loads(body)["cameras"]["dead"] == "failed"
    finally:
        healthy.stop()
        hung.close()
    assert ingest.exit_code == 0
    log = caplog.text
    assert "camera dead: connecting -> reconnecting (unreachable; retry in" in log
    assert "gave up after 3 reconnect attempts" in log
    assert "hunter2" not in log and "rtsp://***@127.0.0.1" in log


def test_every_camera_failing_is_a_nonzero_exit(kafka_server, unique_prefix):
    cameras = [CameraConfig(id="gone", url=f"http://127.0.0.1:{free_port()}/x")]
    with RunningIngest(kafka_server.bootstrap, unique_prefix, cameras,
                       reconnect_max_attempts=1, **FAST_RECONNECT) as ingest:
        assert ingest.wait_done(15) == 1


def test_stalled_stream_is_detected_and_reconnected(kafka_server, unique_prefix, jpegs):
    camera = MjpegServer(jpegs, fps=15).start()
    cam = CameraConfig(id="frozen", url=camera.url, fps=5)
    try:
        with RunningIngest(kafka_server.bootstrap, unique_prefix, [cam],
                           **FAST_RECONNECT) as ingest:
            counts = ingest.counts("frozen")
            assert wait_until(lambda: counts.published >= 3, 15)
            camera.stalled.set()  # connection stays open, frames stop: a frozen camera
            assert wait_until(lambda: counts.reconnects >= 1, 2 + 5)  # stall_timeout_s = 2
            camera.stalled.clear()
            published = counts.published
            assert wait_until(lambda: counts.published >= published + 3, 10)
            assert counts.state is SourceState.STREAMING
    finally:
        camera.stop()
    assert camera.connections >= 2


def test_gap_longer_than_session_gap_starts_a_new_session(kafka_server, unique_prefix, jpegs):
    camera = MjpegServer(jpegs, fps=15).start()
    cam = CameraConfig(id="till", url=camera.url, fps=5, session={"gap_s": 2.0, "every_s": 0})
    try:
        with RunningIngest(kafka_server.bootstrap, unique_prefix, [cam],
                           **FAST_RECONNECT) as ingest:
            counts = ingest.counts("till")
            assert wait_until(lambda: counts.published >= 3, 15)
            camera.stop()
            time.sleep(3.0)  # longer than the 2 s session gap
            camera.start()
            published = counts.published
            assert wait_until(lambda: counts.published >= published + 3, 10)
    finally:
        camera.stop()
    def every_session_ended(g):
        starts = [e for e in g.control if e.type == "session_start"]
        return len(starts) >= 2 and g.complete(len(starts))

    got = read_topics(kafka_server.bootstrap, unique_prefix, every_session_ended)
    ends = sorted(got.ends(), key=lambda e: e.ts)
    # At least the outage splits the sessions (a starved CI machine may add another gap).
    assert len(ends) >= 2 and [e.reason for e in ends] == ["gap"] * (len(ends) - 1) + ["shutdown"]
    assert [e.type for e in got.control].count("session_start") == len(ends)
    for end in ends:
        frames = [h for _, h, _ in got.frames if h.session_id == end.session_id]
        assert end.frames_published == len(frames) >= 1
        assert sorted(h.seq for h in frames) == list(range(len(frames)))
        assert min(h.offset_s for h in frames) == 0.0
