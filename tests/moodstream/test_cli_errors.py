"""A user's mistake gets one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from moodstream.redis_keys import RedisKeys
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


# ---------------------------------------------------------------- report paths


def test_report_path_that_is_a_directory_is_refused_before_any_work(tmp_path):
    folder = tmp_path / "out.json"
    folder.mkdir()
    result = run_cli("analyze", str(VIDEOS / "no_face.mp4"), "--report", str(folder))
    assert_one_clear_line(result, 2, "is a directory", "out.json")


def test_report_path_under_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    result = run_cli("analyze", str(VIDEOS / "no_face.mp4"), "--report",
                     str(tmp_path / "notes.txt" / "r.json"))
    assert_one_clear_line(result, 2, "cannot write the report", "notes.txt", "not a directory")


def test_report_command_refuses_a_directory(redis_server, tmp_path):
    folder = tmp_path / "s.html"
    folder.mkdir()
    result = run_cli("report", "some-session", "--report", str(folder), REDIS_URL=redis_server.url)
    assert_one_clear_line(result, 2, "is a directory", "s.html")


def test_a_report_that_fails_while_written_is_one_user_error(tmp_path):
    from moodstream.cli import UserError, _write

    (tmp_path / "taken").write_text("")
    with pytest.raises(UserError) as error:  # the folder turned into a file after the check
        _write({"session_id": "s"}, tmp_path / "taken" / "r.json", "json")
    assert str(error.value).startswith("cannot write the report to") and "\n" not in str(error.value)


# ---------------------------------------------------------------- camera file and ids


def test_camera_file_that_is_not_utf8_is_one_line(tmp_path):
    config = tmp_path / "cameras.yaml"
    config.write_bytes("cameras:\n  - id: caf\xe9\n    url: rtsp://cam/1\n".encode("latin-1"))
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    result = subprocess.run([sys.executable, "-m", "ingest", "--config", str(config)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert_one_clear_line(result, 2, "cameras.yaml", "not UTF-8", "0xe9")


@pytest.mark.parametrize("name", ["_clip.mp4", "__.mp4", "-x-.mp4", ".hidden.mp4", "ünï côdé.mkv",
                                  "a" * 60 + "_b.mp4", "clip:1.mp4", "_" * 47 + "-x.mp4"])
def test_camera_ids_derived_from_file_names_are_valid(name):
    from pathlib import Path

    from moodstream.cli import camera_id_for
    from moodstream.schemas import ID_PATTERN

    taken: set[str] = set()
    ids = [camera_id_for(Path("/videos") / name, taken) for _ in range(3)]
    assert all(ID_PATTERN.fullmatch(camera_id) for camera_id in ids), ids
    assert len(set(ids)) == 3  # the same name twice gets distinct ids
    assert camera_id_for(Path("_clip.mp4"), set()) == "clip"


# ---------------------------------------------------------------- sessions


def test_sessions_lists_timestamps_no_calendar_holds(redis_server):
    import redis

    prefix = f"cli{os.getpid()}"
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    sessions = {"far-future": 1e20, "far-past": -1e20, "forever": float("inf"), "normal": 1.7e9}
    try:
        client.zadd(f"{prefix}:sessions", sessions)
        for session_id in sessions:
            client.hset(RedisKeys(prefix).meta(session_id),
                        mapping={"camera_id": "cam-1", "status": "closed"})
        result = run_cli("sessions", REDIS_URL=redis_server.url, MOODSTREAM_REDIS_PREFIX=prefix)
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert set(lines) == set(sessions)
    assert lines["far-future"] == "cam-1\tinvalid-time(1e+20)\tclosed"
    assert lines["far-past"] == "cam-1\tinvalid-time(-1e+20)\tclosed"
    assert lines["forever"] == "cam-1\tinvalid-time(inf)\tclosed"
    assert lines["normal"] == "cam-1\t2023-11-14 22:13:20Z\tclosed"


def test_sigint_stops_the_cli_even_when_it_started_with_sigint_ignored(tmp_path):
    """A shell starts `moodstream demo &` (and CI runners their jobs) with SIGINT ignored;
    Python then never raises KeyboardInterrupt, so the CLI installs its own handler."""
    import signal
    import time
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(XDG_RUNTIME_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "moodstream", "demo", "--port", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "http://" not in (proc.stdout.readline() or ""):
            pass
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert err.rstrip().endswith("moodstream: stopped")
