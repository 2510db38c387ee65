"""`python -m ingest` as the launcher runs it: real broker, real files, real exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from moodstream.embedded import free_port
from tests.conftest import REPO, VIDEOS, require
from tests.ingest.helpers import read_topics

SMILE = VIDEOS / "single_face_smile.mp4"


def run_ingest(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ingest", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_clean_line(stderr: str, *needles: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and all(n in lines[0] for n in needles), stderr


@pytest.mark.integration
@pytest.mark.slow
def test_file_fast_mode_publishes_every_frame_then_session_end(stack_env, kafka_server,
                                                               unique_prefix):
    result = run_ingest(stack_env, "--source", str(require(SMILE)), "--camera-id", "till-1",
                        "--session-id", "smile-1", "--fps", "0", "--mode", "fast")
    assert result.returncode == 0, result.stderr
    assert "read=72 published=72 dropped=0" in result.stderr
    got = read_topics(kafka_server.bootstrap, unique_prefix,
                      lambda g: g.complete(), timeout_s=20)
    headers = sorted((h for _, h, _ in got.frames), key=lambda h: h.seq)
    assert [h.seq for h in headers] == list(range(72))
    assert {key for key, _, _ in got.frames} == {b"till-1"}
    assert all(jpeg[:2] == b"\xff\xd8" for _, _, jpeg in got.frames)  # JPEG magic
    assert {(h.session_id, h.width, h.height) for h in headers} == {("smile-1", 640, 360)}
    offsets = [h.offset_s for h in headers]
    assert offsets[0] == 0.0 and offsets == sorted(offsets) and 2.3 < offsets[-1] < 2.4
    assert [e.type for e in got.control] == ["session_start", "session_end"]
    end = got.ends()[0]
    assert (end.session_id, end.frames_published, end.reason) == ("smile-1", 72, "eof")
    assert end.source == str(SMILE)


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_stops_a_looping_file_and_counts_exactly(stack_env, kafka_server, unique_prefix):
    proc = subprocess.Popen([sys.executable, "-m", "ingest", "--source", str(require(SMILE)),
                             "--camera-id", "loop", "--loop", "--fps", "10"], cwd=REPO,
                            env=stack_env, stderr=subprocess.PIPE, text=True)
    try:
        got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: len(g.frames) >= 30,
                          timeout_s=30)  # 30 frames at 10 fps real time: the clip looped
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete())
    [end] = got.ends()
    assert end.reason == "shutdown" and end.frames_published == len(got.frames) >= 30
    offsets = sorted(h.offset_s for _, h, _ in got.frames)
    assert offsets[-1] > 2.5  # media time keeps growing across loops (clip is 2.4 s)


def test_missing_file_is_one_line_exit_2(tmp_path):
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    result = run_ingest(env, "--source", str(tmp_path / "nope.mp4"))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, "video file not found", "nope.mp4")


def test_unreadable_video_is_one_line_exit_2(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    result = run_ingest(env, "--source", str(junk))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, "cannot read video file", "junk.mp4")


def test_bad_config_is_one_line_exit_2(tmp_path):
    config = tmp_path / "cams.yaml"
    config.write_text("cameras: [{id: a, url: x.mp4, fps: fast}]")
    result = run_ingest(dict(os.environ), "--config", str(config))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, "ingest: error:", "cameras[0]: fps")


def test_unreachable_broker_is_one_line_nonzero(tmp_path):
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
               MOODSTREAM_CONNECT_TIMEOUT_S="1")
    start = time.monotonic()
    result = run_ingest(env, "--source", str(require(SMILE)))
    assert result.returncode == 1 and time.monotonic() - start < 30
    assert_one_clean_line(result.stderr, "cannot reach Kafka")


@pytest.mark.integration
@pytest.mark.slow
def test_config_file_one_bad_camera_does_not_stop_the_others(stack_env, kafka_server,
                                                             unique_prefix, tmp_path):
    config = tmp_path / "cams.toml"
    config.write_text(f"""
[defaults]
mode = "fast"
fps = 0
purpose = "recorded video analysis"

[[cameras]]
id = "broken"
url = "{tmp_path / 'missing.mp4'}"

[[cameras]]
id = "good"
url = "{require(SMILE)}"
session = {{ id = "good-1" }}

[[cameras]]
id = "off"
url = "{require(SMILE)}"
enabled = false
""")
    result = run_ingest(stack_env, "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "camera broken: video file not found" in result.stderr
    assert "camera good: done (ended): read=72 published=72" in result.stderr
    assert "camera off" not in result.stderr
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete())
    assert {key for key, _, _ in got.frames} == {b"good"} and len(got.frames) == 72
    assert got.ends()[0].session_id == "good-1"


@pytest.mark.integration
def test_metrics_port_in_use_is_one_line_exit_2(stack_env):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_ingest(stack_env, "--source", str(require(SMILE)), "--metrics-port",
                            str(port))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, f"cannot serve metrics on 127.0.0.1:{port}")


def test_missing_webcam_is_one_line_exit_2():
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    env["MOODSTREAM_INGEST_PURPOSE"] = "help desk"  # a live camera must say why it is analysed
    result = run_ingest(env, "--source", "63")  # /dev/video63: no such device here
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, "cannot open webcam 63")
