"""A user's mistake gets one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import VIDEOS


def run_cli(*args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(MOODSTREAM_CONNECT_TIMEOUT_S="2", XDG_RUNTIME_DIR="/nonexistent-runtime", **env_overrides)
    return subprocess.run([sys.executable, "-m", "moodstream", *args], env=env, timeout=120,
                          capture_output=True, text=True)


def assert_one_clear_line(result, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0]


def test_missing_video(tmp_path):
    assert_one_clear_line(run_cli("analyze", str(tmp_path / "nope.mp4"), "--report", "r.json"),
                          2, "video not found", "nope.mp4")


def test_unreadable_video(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00 ftypisom" + os.urandom(4096))
    assert_one_clear_line(run_cli("analyze", str(bad), "--report", "r.json"),
                          2, "cannot decode video", "broken.mp4")


def test_unknown_report_format(tmp_path):
    assert_one_clear_line(run_cli("analyze", str(VIDEOS / "no_face.mp4"), "--report",
                                  str(tmp_path / "r.xml")), 2, "report format")


@pytest.mark.integration
def test_unreachable_external_broker(tmp_path):
    result = run_cli("analyze", str(VIDEOS / "no_face.mp4"), "--report", str(tmp_path / "r.json"),
                     KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert_one_clear_line(result, 3, "cannot reach Kafka", "127.0.0.1:9")


@pytest.mark.integration
def test_unreachable_external_redis(tmp_path, kafka_server):
    result = run_cli("analyze", str(VIDEOS / "no_face.mp4"), "--report", str(tmp_path / "r.json"),
                     KAFKA_BOOTSTRAP_SERVERS=kafka_server.bootstrap,
                     REDIS_URL="redis://user:hunter2@127.0.0.1:9/0")
    assert_one_clear_line(result, 3, "cannot reach Redis")
    assert "hunter2" not in result.stderr  # credentials are redacted


def test_report_without_a_running_system():
    assert_one_clear_line(run_cli("report", "some-session", "--report", "x.json"),
                          2, "no running moodstream")


def test_report_rejects_a_crafted_session_id(redis_server):
    result = run_cli("report", "../../etc/passwd", "--report", "x.json", REDIS_URL=redis_server.url)
    assert_one_clear_line(result, 2, "invalid session id")
