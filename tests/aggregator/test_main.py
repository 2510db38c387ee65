"""`python -m aggregator` as a process: config/server errors, and the real Kafka -> Redis path."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from moodstream.clients import ensure_topics
from moodstream.embedded import free_port
from moodstream.redis_keys import RedisKeys
from moodstream.reports import build_report
from moodstream.settings import CommonSettings
from moodstream.topics import Topics
from tests.aggregator.conftest import REPO_ROOT, control, detection
from tests.aggregator.test_store import expected_report_numbers, stream


def run_aggregator(env: dict, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregator", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def start_aggregator(env: dict, log_path, *args: str) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "aggregator", *args], env=env,
                                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def assert_one_clear_line(proc: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and text in lines[0], proc.stderr


def bare_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(extra)
    return env


def test_wrong_config_is_one_line_and_exit_2():
    env = bare_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", REDIS_URL="redis://127.0.0.1:1/0")
    assert_one_clear_line(run_aggregator(env, "--valence", "joy=1"), 2, "invalid setting valence")


@pytest.mark.parametrize("args, env, text", [
    (["--valence", "angry=-3"], {}, "[-1, 1]"),
    (["--valence", "angry=much"], {}, "not a number"),
    (["--idle-timeout-s", "0"], {}, "idle_timeout_s"),
    (["--log-level", "chatty"], {}, "log_level"),
    ([], {"MOODSTREAM_AGGREGATOR_ALERT_RESOLVE_THRESHOLD": "0.9"}, "alert_resolve_threshold"),
    ([], {"MOODSTREAM_AGGREGATOR_ALERT_WEBHOOK_URL": "file:///etc/passwd"}, "http"),
    ([], {"KAFKA_BOOTSTRAP_SERVERS": ""}, "KAFKA_BOOTSTRAP_SERVERS is not set"),
])
def test_wrong_config_in_process(monkeypatch, capsys, args, env, text):
    from aggregator.__main__ import main
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and text in err, err


def test_valence_overrides_keep_the_other_defaults(monkeypatch):
    from aggregator.settings import AggregatorSettings
    from moodstream.emotions import DEFAULT_VALENCE
    settings = AggregatorSettings.load(valence="happy=0.8, surprise=-0.2")
    assert settings.valence == dict(DEFAULT_VALENCE, happy=0.8, surprise=-0.2)
    monkeypatch.setenv("MOODSTREAM_AGGREGATOR_VALENCE", "sad=-1")
    assert AggregatorSettings.load().valence["sad"] == -1.0


def test_unreachable_redis_is_one_line_and_exit_1():
    env = bare_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", MOODSTREAM_CONNECT_TIMEOUT_S="0.5",
                   REDIS_URL=f"redis://user:secret@127.0.0.1:{free_port()}/0")
    proc = run_aggregator(env)
    assert_one_clear_line(proc, 1, "cannot reach Redis")
    assert "secret" not in proc.stderr


@pytest.mark.integration
def test_unreachable_kafka_is_one_line_and_exit_1(redis_server):
    env = bare_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}", REDIS_URL=redis_server.url,
                   MOODSTREAM_CONNECT_TIMEOUT_S="0.5")
    assert_one_clear_line(run_aggregator(env), 1, "cannot reach Kafka")


def produce(env: dict, messages: list) -> None:
    topics = Topics(env["MOODSTREAM_TOPIC_PREFIX"])
    producer = KafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all",
                             linger_ms=5)
    try:
        for msg in messages:
            if isinstance(msg, bytes):
                producer.send(topics.detections, key=b"cam1", value=msg)
                continue
            topic = topics.control if hasattr(msg, "type") else topics.detections
            producer.send(topic, key=msg.camera_id.encode(), value=msg.to_bytes())
        producer.flush(30)
    finally:
        producer.close()


def prepare(env: dict) -> tuple[redis.Redis, RedisKeys]:
    settings = CommonSettings(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                              topic_prefix=env["MOODSTREAM_TOPIC_PREFIX"])
    ensure_topics(settings)
    return (redis.Redis.from_url(env["REDIS_URL"], decode_responses=True),
            RedisKeys(env["MOODSTREAM_REDIS_PREFIX"]))


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"aggregator exited {proc.returncode}: {log_path.read_text()[-2000:]}")
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}: {log_path.read_text()[-2000:]}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise


@pytest.mark.integration
@pytest.mark.slow
def test_kafka_to_redis_with_duplicates_poison_and_an_early_end_event(stack_env, tmp_path):
    r, keys = prepare(stack_env)
    frames = stream(60)
    deep = b'{"v": 1, "faces": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    far = frames[0].to_bytes().replace(b'"offset_s":0.0', b'"offset_s":1e17')
    produce(stack_env, [control("session_start", source="clip.mp4"), *frames[:50],
                        *frames[10:20], b"{broken", deep, far,
                        control("session_end", frames=60), *frames[50:]])
    log_path = tmp_path / "aggregator.log"
    proc = start_aggregator(stack_env, log_path, "--idle-timeout-s", "60")
    try:
        wait_for(lambda: r.hget(keys.meta("s1"), "status") == "closed", 60, "session close",
                 proc, log_path)
        report = build_report(r, keys, "s1")
        want = expected_report_numbers(frames)
        assert report["frames_processed"] == 60 and report["faces_detected"] == want["faces"]
        assert report["mean_sentiment"] == pytest.approx(want["mean_sentiment"], abs=1e-4)
        assert report["source"] == "clip.mp4" and report["status"] == "closed"
        assert [row["t"] for row in report["timeline"]] == list(range(6))
        assert r.bitcount(keys.seen("s1", "0")) == 60
    finally:
        code = stop(proc)
    assert code == 0, log_path.read_text()[-2000:]
    log = log_path.read_text()
    assert "skipped malformed message" in log and "Traceback" not in log
    dead = read_topic(stack_env, Topics(stack_env["MOODSTREAM_TOPIC_PREFIX"]).deadletter, 3)
    assert [d.value for d in dead] == [b""] * 3  # evidence, never the payload
    reasons = [dict(d.headers)["reason"] for d in dead]
    assert b"nested" in reasons[1] and b"offset_s" in reasons[2]
    headers = dict(dead[0].headers)
    assert b"not JSON" in headers["reason"] and headers["source_topic"].endswith(b".detections")
    assert headers["original_bytes"] == b"7"
    assert headers["original_sha256"] == hashlib.sha256(b"{broken").hexdigest().encode()


def read_topic(env: dict, topic: str, count: int, timeout: float = 20) -> list:
    consumer = KafkaConsumer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        found, deadline = [], time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            found += [r for rs in consumer.poll(timeout_ms=200).values() for r in rs]
        return found
    finally:
        consumer.close()


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_counts_everything_exactly_once(stack_env, tmp_path):
    r, keys = prepare(stack_env)
    frames = [detection(seq, ["happy", "angry"][: seq % 3], tracks=[1, 2][: seq % 3])
              for seq in range(3000)]
    produce(stack_env, [*frames, control("session_end", frames=len(frames))])
    env = dict(stack_env, MOODSTREAM_AGGREGATOR_MAX_POLL_RECORDS="25")  # many commits: a kill lands mid-way
    log_path = tmp_path / "aggregator.log"

    first = start_aggregator(env, log_path)
    try:
        wait_for(lambda: int(r.hget(keys.totals("s1"), "frames") or 0) >= 600, 60,
                 "a fifth of the stream", first, log_path)
    finally:
        stop(first, signal.SIGKILL)
    applied_before_crash = int(r.hget(keys.totals("s1"), "frames"))
    assert applied_before_crash < len(frames), "the crash did not land mid-stream"

    second = start_aggregator(env, log_path)
    try:
        wait_for(lambda: r.hget(keys.meta("s1"), "status") == "closed", 90, "session close",
                 second, log_path)
    finally:
        assert stop(second) == 0
    report = build_report(r, keys, "s1")
    want = expected_report_numbers(frames)
    assert report["frames_processed"] == len(frames)
    assert report["faces_detected"] == want["faces"]
    assert report["frames_with_faces"] == want["frames_with_faces"]
    for emotion, total in want["emotion_totals"].items():
        assert report["emotion_totals"][emotion] == pytest.approx(total, abs=1e-3)
    assert sum(row["frames"] for row in report["timeline"]) == len(frames)
    # The restarted process applied exactly what the crashed one had not.
    stopped = [line for line in log_path.read_text().splitlines() if "stopped: Counters(" in line]
    assert len(stopped) == 1, "only the second run stops cleanly"
    applied_after = int(stopped[0].split("detections=")[1].split(",")[0])
    assert applied_after == len(frames) - applied_before_crash


@pytest.mark.integration
@pytest.mark.slow
def test_redis_lost_mid_run_is_one_line_exit_1_and_nothing_committed(kafka_server, stack_env,
                                                                      tmp_path):
    from moodstream.embedded import EmbeddedRedis
    own_redis = EmbeddedRedis().start()
    env = dict(stack_env, REDIS_URL=own_redis.url, MOODSTREAM_CONNECT_TIMEOUT_S="1")
    r, keys = prepare(env)
    log_path = tmp_path / "aggregator.log"
    proc = start_aggregator(env, log_path)
    try:
        produce(env, [detection(i, ["happy"]) for i in range(5)])
        wait_for(lambda: r.hget(keys.totals("s1"), "frames") == "5", 60, "first frames", proc,
                 log_path)
        # Redis goes only once that batch is committed: its index writes and housekeeping
        # (more Redis rounds) come between the totals and the commit.
        wait_for(lambda: committed_detections(env) == 5, 60, "first commit", proc, log_path)
        own_redis.stop()
        produce(env, [detection(i, ["happy"]) for i in range(5, 10)])
        assert proc.wait(30) == 1
    finally:
        own_redis.stop()
        if proc.poll() is None:
            stop(proc, signal.SIGKILL)
    lines = log_path.read_text().strip().splitlines()
    assert "Traceback" not in log_path.read_text()
    assert lines[-1].startswith("aggregator: Redis failed"), lines[-3:]
    # The batch Redis never took was not committed: the group will get it again.
    assert committed_detections(env) == 5


def committed_detections(env: dict) -> int:
    """The aggregator group's committed offsets on the detections topic, summed."""
    consumer = KafkaConsumer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                             group_id="aggregator", enable_auto_commit=False)
    try:
        topic = Topics(env["MOODSTREAM_TOPIC_PREFIX"]).detections
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.committed(tp) or 0 for tp in parts)
    finally:
        consumer.close()
