"""Start-up without a consumer-group join (`--assign all`, moodstream.clients.assign_all), on
the real embedded broker (Tansu) and Valkey.

A one-shot `moodstream analyze` runs ONE detector and ONE aggregator on a broker of its own,
so they take every partition directly instead of waiting ~session_timeout/2 for Tansu to
complete a group join. At-least-once must still hold: offsets are committed to the group
after hand-off and read back at start, so a process killed between handing work on and
committing is redelivered that work by its successor, which resumes at the committed offset
(and the aggregator's (session, run, seq) dedupe keeps the counts exact).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from moodstream.clients import ensure_topics, kafka_consumer
from moodstream.redis_keys import RedisKeys
from moodstream.schemas import DetectionMessage
from moodstream.settings import CommonSettings
from moodstream.topics import Topics
from tests.aggregator.conftest import detection
from tests.conftest import REPO, VIDEOS, require
from tests.detector.conftest import clip_frames
from tests.detector.test_service import publish_frames, read_topic
from tests.moodstream.proc_utils import stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Exits the process, like kill -9, on the N-th commit of a non-empty batch: after the
# batch was handed on (detections acknowledged / applied in Redis), before its commit.
CRASH_ON_COMMIT = """
import os, sys
N = int(os.environ["CRASH_ON_COMMIT"])
calls = [0]
def crashing(original):
    def commit(self, *args, **kwargs):
        offsets = args[0] if args else kwargs.get("offsets", "all consumed")
        if offsets:
            calls[0] += 1
            if calls[0] == N:
                sys.stderr.write("crashing before commit %d\\n" % N)
                sys.stderr.flush()
                os._exit(137)
        return original(self, *args, **kwargs)
    return commit
import kafka  # both commit through moodstream.consumer.ConsumerLoop -> KafkaConsumer.commit
kafka.KafkaConsumer.commit = crashing(kafka.KafkaConsumer.commit)
if sys.argv[1] == "detector":
    from detector.__main__ import main
else:
    from aggregator.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def settings_for(env: dict, **extra) -> CommonSettings:
    return CommonSettings.load(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                               topic_prefix=env["MOODSTREAM_TOPIC_PREFIX"], **extra)


def committed(env: dict, group: str, topic: str, partitions: int = 4) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], group_id=group,
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        consumer.close()


def run(module: str, env: dict, log: Path, *args: str, crash_on_commit: int = 0):
    argv = ([sys.executable, "-c", CRASH_ON_COMMIT, module, *args] if crash_on_commit
            else [sys.executable, "-m", module, *args])
    env = dict(env, CRASH_ON_COMMIT=str(crash_on_commit))
    with log.open("a") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=out)


def wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before {what}: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}: {log.read_text()[-2000:]}")


# ------------------------------------------------------------------ the consumer factory

def test_assigned_consumer_reads_at_once_and_resumes_from_committed_offsets(stack_env):
    # A 20 s session timeout: a group join would take >= 10 s on Tansu before any record.
    settings = settings_for(stack_env, kafka_session_timeout_ms=20_000)
    ensure_topics(settings)
    topic = Topics(settings.topic_prefix).frames
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    for i in range(20):
        producer.send(topic, key=f"cam{i % 4}".encode(), value=str(i).encode())
    producer.flush()
    producer.close()

    start = time.monotonic()
    consumer = kafka_consumer(settings, "g", [topic], assign="all")
    records = []
    try:
        while not records and time.monotonic() - start < 30:
            records = [r for batch in consumer.poll(timeout_ms=100).values() for r in batch]
        first_record_s = time.monotonic() - start
        assert records, "nothing read"
        assert first_record_s < 2.0, f"{first_record_s:.2f} s to the first record: a join wait?"
        assert consumer.assignment() == {TopicPartition(topic, p) for p in range(4)}
        while len(records) < 20 and time.monotonic() - start < 30:
            records += [r for batch in consumer.poll(timeout_ms=100).values() for r in batch]
        assert sorted(int(r.value) for r in records) == list(range(20))
        # Hand-off done for the first two records of each partition: commit those only,
        # with no group membership.
        done = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if sum(1 for x in records if x.partition == r.partition and x.offset < r.offset) < 2:
                done[tp] = max(done.get(tp, 0), r.offset + 1)
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in done.items()})
    finally:
        consumer.close(autocommit=False)
    stored = {p: o for p, o in committed(stack_env, "g", topic).items() if o is not None}
    assert stored == {tp.partition: o for tp, o in done.items()}

    again = kafka_consumer(settings, "g", [topic], assign="all")
    uncommitted = {int(r.value) for r in records
                   if r.offset >= done[TopicPartition(r.topic, r.partition)]}
    rest, deadline = [], time.monotonic() + 30
    try:
        while len(rest) < len(uncommitted) and time.monotonic() < deadline:
            rest += [r for batch in again.poll(timeout_ms=100).values() for r in batch]
        rest += [r for batch in again.poll(timeout_ms=500).values() for r in batch]
    finally:
        again.close(autocommit=False)
    assert 0 < len(uncommitted) < 20
    # The successor resumed at the committed offsets: the uncommitted records, each once.
    assert sorted(int(r.value) for r in rest) == sorted(uncommitted)


def test_group_mode_stays_the_default_and_bad_modes_are_refused(stack_env):
    from detector.settings import DetectorSettings
    assert DetectorSettings.load(kafka_bootstrap_servers="k:1").assign == "group"
    assert DetectorSettings.load(kafka_bootstrap_servers="k:1", assign="all").assign == "all"
    with pytest.raises(ValueError, match="assign"):
        kafka_consumer(settings_for(stack_env), "g", ["x"], assign="static")


# ------------------------------------------------------------------ crash before commit

def test_detector_killed_between_delivery_and_commit_is_redelivered_on_restart(stack_env,
                                                                               tmp_path):
    frames = clip_frames("single_face_smile.mp4", 4)[:16]
    publish_frames(stack_env, ["cam-a"], frames)  # one camera: one partition, offset = seq
    topics = Topics(stack_env["MOODSTREAM_TOPIC_PREFIX"])
    group, log = "det", tmp_path / "detector.log"
    args = ("--assign", "all", "--group-id", group, "--max-batch", "4", "--max-wait-ms", "2000")

    first = run("detector", stack_env, log, *args, crash_on_commit=2)
    assert first.wait(120) == 137, log.read_text()[-2000:]
    at_crash = committed(stack_env, group, topics.frames)
    (partition, offset), = [(p, o) for p, o in at_crash.items() if o]
    # Everything delivered was acknowledged before the crash: it is all on the topic now.
    before = [DetectionMessage.from_bytes(r.value).seq
              for r in read_topic(stack_env, topics.detections, 10_000, timeout_s=1.5)]
    assert 0 < offset <= max(before), (offset, before)  # batch 2 out, its commit not

    second = run("detector", stack_env, log, *args)
    try:
        wait_for(lambda: committed(stack_env, group, topics.frames)[partition] == len(frames),
                 120, "every frame committed", second, log)
    finally:
        assert stop(second) == 0, log.read_text()[-2000:]
    everything = [DetectionMessage.from_bytes(r.value).seq
                  for r in read_topic(stack_env, topics.detections, 10_000, timeout_s=1.5)]
    counts = Counter(everything)
    assert set(counts) == set(range(len(frames)))
    # The restart resumed exactly at the committed offset: what was committed came once,
    # what was delivered but not committed came again, the rest once.
    assert all(counts[seq] == 1 for seq in range(offset))
    assert all(counts[seq] == 2 for seq in before if seq >= offset)
    assert sum(counts.values()) == len(frames) + sum(seq >= offset for seq in before)
    text = log.read_text()
    assert text.count("without a group join") == 2 and "partitions assigned:" not in text
    assert "crashing before commit 2" in text


def test_aggregator_killed_between_redis_and_commit_is_redelivered_and_counted_once(
        stack_env, tmp_path):
    settings = settings_for(stack_env)
    ensure_topics(settings)
    topics, keys = Topics(settings.topic_prefix), RedisKeys(stack_env["MOODSTREAM_REDIS_PREFIX"])
    frames = [detection(seq, ["happy"] if seq % 2 else []) for seq in range(60)]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    for message in frames:
        producer.send(topics.detections, key=b"cam1", value=message.to_bytes())
    producer.flush()
    producer.close()
    r = redis.Redis.from_url(stack_env["REDIS_URL"], decode_responses=True)
    env = dict(stack_env, MOODSTREAM_AGGREGATOR_MAX_POLL_RECORDS="10")
    group, log = "agg", tmp_path / "aggregator.log"
    args = ("--assign", "all", "--group-id", group)

    def frames_in_redis() -> int:
        return int(r.hget(keys.totals("s1"), "frames") or 0)

    first = run("aggregator", env, log, *args, crash_on_commit=2)
    assert first.wait(60) == 137, log.read_text()[-2000:]
    applied_before = frames_in_redis()
    at_crash = committed(stack_env, group, topics.detections)
    (partition, offset), = [(p, o) for p, o in at_crash.items() if o]
    assert 0 < offset < applied_before < len(frames)  # batch 2 in Redis, its commit not

    second = run("aggregator", env, log, *args)
    try:
        wait_for(lambda: committed(stack_env, group, topics.detections)[partition] == len(frames),
                 60, "every detection committed", second, log)
    finally:
        assert stop(second) == 0, log.read_text()[-2000:]
    assert frames_in_redis() == len(frames)  # exactly once, redelivery included
    assert int(r.hget(keys.totals("s1"), "faces")) == 30
    stopped = re.search(r"stopped: Counters\(detections=(\d+), duplicates=(\d+)", log.read_text())
    assert stopped, log.read_text()[-2000:]
    # The restart resumed at the committed offset: it re-read exactly the uncommitted batch.
    assert (int(stopped[1]), int(stopped[2])) == (len(frames) - applied_before,
                                                  applied_before - offset)
    assert log.read_text().count("without a group join") == 2


# ------------------------------------------------------------------ analyze

def test_analyze_starts_detector_and_aggregator_without_a_group_join(tmp_path):
    video = require(VIDEOS / "single_face_smile.mp4")
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "moodstream", "analyze", str(video), "--report",
                           str(report)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    logs, = tmp_path.glob("moodstream-analyze-*")
    for name in ("detector", "aggregator"):
        text = (logs / f"{name}.log").read_text()
        assert "without a group join" in text, text[-2000:]
        assert "partitions assigned:" not in text
    assert json.loads(report.read_text())["frames_processed"] == 72
