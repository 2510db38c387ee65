"""Chaos on real servers: kill -9 a worker or an embedded server under the launcher and
check what survives. Frames are counted exactly once end to end (the aggregator dedupes
on (session, run_id, seq)); Valkey keeps all it acknowledged; the embedded broker is
memory-only, and this pins that documented loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer

from moodstream.clients import ensure_topics, redis_client
from moodstream.launcher import Stack
from moodstream.redis_keys import RedisKeys
from moodstream.supervision import LauncherSettings
from moodstream.topics import Topics
from tests.conftest import REPO, VIDEOS, require

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.integration]


def supervise_until(stack: Stack, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s; {stack.health()}"
        stack.supervise()
        time.sleep(0.1)


def health(stack: Stack, name: str) -> dict:
    return next(record for record in stack.health() if record["name"] == name)


def restarted(stack: Stack, name: str) -> bool:
    # Restarts, not just "running": right after a kill the process may not be reaped yet.
    record = health(stack, name)
    return record["restarts"] == 1 and record["state"] == "running"


def test_embedded_redis_restart_loses_nothing_acknowledged(kafka_server, unique_prefix):
    settings = LauncherSettings.load(kafka_bootstrap_servers=kafka_server.bootstrap,
                                     topic_prefix=unique_prefix)
    with Stack(settings) as stack:
        client = redis_client(stack.settings)
        for i in range(300):  # acknowledged one by one, the last just before the kill
            client.hincrby("totals", "frames", 1)
            client.set(f"frame:{i}", i)
        os.kill(health(stack, "valkey")["pid"], signal.SIGKILL)
        supervise_until(stack, lambda: restarted(stack, "valkey"), 20, "valkey restarted")
        assert client.hget("totals", "frames") == "300"
        assert client.mget([f"frame:{i}" for i in range(300)]) == [str(i) for i in range(300)]
        assert health(stack, "valkey")["kind"] == "server"


def test_embedded_broker_restart_loses_what_was_not_consumed(redis_server, unique_prefix):
    """Documented limit (README): Tansu as shipped stores in memory only."""
    settings = LauncherSettings.load(redis_url=redis_server.url, topic_prefix=unique_prefix,
                                     redis_prefix=unique_prefix)
    with Stack(settings) as stack:
        ensure_topics(stack.settings)
        bootstrap, topic = stack.settings.kafka_bootstrap_servers, Topics(unique_prefix).control
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        producer.send(topic, b"acknowledged").get(10)
        producer.close(5)
        os.kill(health(stack, "tansu")["pid"], signal.SIGKILL)
        supervise_until(stack, lambda: restarted(stack, "tansu"), 20, "tansu restarted")
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=3000)
        try:
            assert [m.value for m in consumer] == []  # the acknowledged message is gone
            assert topic in consumer.topics()  # the launcher recreated the topics
        finally:
            consumer.close()


def test_killed_detector_is_restarted_and_every_frame_counts_once(kafka_server, redis_server,
                                                                  unique_prefix, tmp_path):
    """kill -9 the detector while a clip streams: the launcher restarts it, frames it had
    not committed are replayed, and the session's total is the clip's 72 frames exactly."""
    clip = require(VIDEOS / "single_face_smile.mp4")  # 72 frames, 2.4 s at its own pace
    settings = LauncherSettings.load(kafka_bootstrap_servers=kafka_server.bootstrap,
                                     redis_url=redis_server.url, topic_prefix=unique_prefix,
                                     redis_prefix=unique_prefix, backoff_initial_s=0.5)
    session_id = f"chaos-{unique_prefix}"
    with Stack(settings, log_dir=tmp_path) as stack:
        ensure_topics(stack.settings)
        r, keys = redis_client(stack.settings), RedisKeys(unique_prefix)
        frames = lambda: int(r.hget(keys.totals(session_id), "frames") or 0)  # noqa: E731
        stack.start("aggregator", "--end-grace-s", "120", "--group-id", f"{unique_prefix}.agg")
        detector = stack.start("detector", "--group-id", f"{unique_prefix}.det")
        supervise_until(stack, lambda: "partitions assigned" in detector.tail(100_000), 60,
                        "detector ready")
        stack.start("ingest:smile", "--camera-id", "smile", "--session-id", session_id, "--fps",
                    "0", "--mode", "realtime", module="ingest", job=True,
                    env={"MOODSTREAM_INGEST_SOURCE": str(clip)})
        supervise_until(stack, lambda: frames() >= 5, 30, "first frames applied")
        os.kill(detector.proc.pid, signal.SIGKILL)  # mid-stream: the clip is still playing
        at_kill = frames()
        supervise_until(stack, lambda: r.hget(keys.meta(session_id), "status") == "closed", 90,
                        "session closed after the detector's restart")
        assert detector.crashes.restarts == 1 and detector.last_exit == -signal.SIGKILL
        assert at_kill < 72
        assert frames() == 72  # none lost, none doubled


def test_killed_file_ingest_replays_and_no_frame_is_doubled(kafka_server, redis_server,
                                                            unique_prefix, tmp_path):
    """kill -9 ingest mid-file: the restarted job replays the file under the same pinned run
    id, so the frames it had already sent are recognised as repeats, not added twice."""
    from moodstream.cli import _start_file_ingest
    clip = require(VIDEOS / "single_face_smile.mp4")
    settings = LauncherSettings.load(kafka_bootstrap_servers=kafka_server.bootstrap,
                                     redis_url=redis_server.url, topic_prefix=unique_prefix,
                                     redis_prefix=unique_prefix, backoff_initial_s=0.5)
    session_id = f"replay-{unique_prefix}"
    with Stack(settings, log_dir=tmp_path) as stack:
        ensure_topics(stack.settings)
        r, keys = redis_client(stack.settings), RedisKeys(unique_prefix)
        frames = lambda: int(r.hget(keys.totals(session_id), "frames") or 0)  # noqa: E731
        stack.start("aggregator", "--end-grace-s", "60", "--group-id", f"{unique_prefix}.agg")
        detector = stack.start("detector", "--group-id", f"{unique_prefix}.det")
        supervise_until(stack, lambda: "partitions assigned" in detector.tail(100_000), 60,
                        "detector ready")
        ingest = _start_file_ingest(stack, clip, "smile", session_id, 0, mode="realtime")
        supervise_until(stack, lambda: frames() >= 10, 60, "first frames applied")
        os.kill(ingest.proc.pid, signal.SIGKILL)
        at_kill = frames()
        supervise_until(stack, lambda: ingest.state == "done" and
                        r.hget(keys.meta(session_id), "status") == "closed", 60,
                        "replay done and session closed")
        assert ingest.crashes.restarts == 1
        assert 10 <= at_kill < 72
        assert frames() == 72  # the replayed frames were repeats


def test_analyze_restarts_a_killed_detector_and_reports_every_frame_once(kafka_server,
                                                                         redis_server,
                                                                         unique_prefix, tmp_path):
    """The CLI path: `moodstream analyze` finds its detector killed, restarts it, and the
    report still holds the clip's 72 frames."""
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_server.bootstrap,
               REDIS_URL=redis_server.url, MOODSTREAM_TOPIC_PREFIX=unique_prefix,
               MOODSTREAM_REDIS_PREFIX=unique_prefix, MOODSTREAM_LAUNCHER_BACKOFF_INITIAL_S="0.5")
    client = redis_client(LauncherSettings.load(redis_url=redis_server.url))
    key = RedisKeys(unique_prefix).workers
    proc = subprocess.Popen([sys.executable, "-m", "moodstream", "analyze",
                             str(require(VIDEOS / "single_face_smile.mp4")), "--report",
                             str(tmp_path / "r.json"), "--timeout", "120"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, killed = time.monotonic() + 30, None
        while killed is None and time.monotonic() < deadline:
            detector = json.loads(client.hget(key, "detector") or "{}")
            if detector.get("pid"):
                killed = detector["pid"]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.1)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, "the launcher never recorded a detector"
    assert proc.returncode == 0, err[-3000:]
    assert f"detector (pid {killed}) stopped unexpectedly (killed by SIGKILL); restart 1" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames_processed"] == 72, out
