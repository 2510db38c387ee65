"""Scale-out on real servers: 8 cameras through 3 detector and 2 aggregator processes
(`python -m detector` / `python -m aggregator`, one consumer group each) on the embedded
Tansu broker and Valkey, one detector SIGKILLed mid-run. The proof is read back from Kafka
itself: every frame published is applied exactly once (Redis totals against the frames
topic and the first detection of each frame), every detector got cameras, and each
camera's frames went to one detector at a time, the killed one's handed to a survivor."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import pytest
from kafka import KafkaConsumer

from benchmarks.scale_bench import CLIP, ScaleRun, assigned_partitions, camera_ids, make_clip
from moodstream.clients import ensure_topics, redis_client
from moodstream.launcher import Stack
from moodstream.redis_keys import RedisKeys
from moodstream.settings import CommonSettings
from moodstream.topics import Topics
from tests.conftest import require

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CAMERAS, PARTITIONS, DETECTORS, AGGREGATORS = 8, 8, 3, 2
FPS = 10  # sampled from a 30 fps clip played in real time: 10 s of clip = 100 frames a camera


def read_topic(settings: CommonSettings, topic: str, expected: int, timeout: float = 60) -> dict:
    """Every record of the topic, per partition in offset order (no group, nothing
    committed); stops once `expected` records arrived and nothing more comes for 2 s."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
                             group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=16 << 20)
    try:
        from kafka.structs import TopicPartition
        partitions = [TopicPartition(topic, p) for p in range(settings.kafka_partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: dict[int, list] = defaultdict(list)
        deadline, quiet_since = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=300)
            for tp, items in batch.items():
                records[tp.partition] += items
                quiet_since = time.monotonic()
            if sum(map(len, records.values())) >= expected and \
                    time.monotonic() - quiet_since > 2:
                break
        return records
    finally:
        consumer.close(autocommit=False)


def frames_sent(records: dict) -> dict[str, set]:
    """session -> {(run_id, seq)} of every frame published."""
    sent: dict[str, set] = defaultdict(set)
    for items in records.values():
        for record in items:
            headers = {k: v.decode() for k, v in record.headers}
            sent[headers["session_id"]].add((headers["run_id"], int(headers["seq"])))
    return sent


def first_detections(records: dict) -> tuple[dict[str, list], int]:
    """session -> the first detection of each frame in partition order (the one the
    aggregator applied; a later copy is a redelivery it drops), and the copies seen."""
    seen, applied, copies = set(), defaultdict(list), 0
    for items in records.values():
        for record in items:
            detection = json.loads(record.value)
            key = (detection["session_id"], detection["run_id"], detection["seq"])
            if key in seen:
                copies += 1
                continue
            seen.add(key)
            applied[detection["session_id"]].append(detection)
    return applied, copies


def owners_by_camera(records: dict) -> dict[str, list[str]]:
    """camera -> the detector ids of its detections in order, runs of one id collapsed."""
    owners: dict[str, list[str]] = defaultdict(list)
    for items in records.values():
        for record in items:
            detection = json.loads(record.value)
            runs = owners[detection["camera_id"]]
            if not runs or runs[-1] != detection["detector_id"]:
                runs.append(detection["detector_id"])
    return owners


@pytest.fixture
def scaled_stack(kafka_server, redis_server, unique_prefix, tmp_path):
    settings = CommonSettings.load(kafka_bootstrap_servers=kafka_server.bootstrap,
                                   redis_url=redis_server.url, topic_prefix=unique_prefix,
                                   redis_prefix=unique_prefix, kafka_partitions=PARTITIONS,
                                   kafka_session_timeout_ms=6000)
    with Stack(settings, log_dir=tmp_path / "logs") as stack:  # never supervised: no restarts
        ensure_topics(stack.settings)
        yield ScaleRun(stack, camera_ids(CAMERAS, PARTITIONS))


def test_eight_cameras_three_detectors_two_aggregators_one_detector_killed(scaled_stack, tmp_path):
    run = scaled_stack
    settings = run.settings
    clip = make_clip(tmp_path / "clip.mp4", 300, require(CLIP))  # 10 s at 30 fps
    client = redis_client(settings, socket_timeout=30)
    keys = RedisKeys(settings.redis_prefix)

    aggregators = run.start_aggregators(AGGREGATORS)
    detectors = run.start_detectors(DETECTORS)
    run.wait(lambda: run.spread(detectors) is not None and run.spread(aggregators) is not None,
             90, "3 detectors and 2 aggregators sharing the partitions")
    holdings = dict(zip((d.name for d in detectors), run.spread(detectors)))
    run.start_ingest(clip, FPS, "realtime", tmp_path)

    run.wait(lambda: run.applied(client, keys) >= 150, 60, "the first frames applied")
    victim = max(detectors, key=lambda d: len(holdings[d.name]))
    run.kill(victim)
    at_kill = run.applied(client, keys)
    survivors = [d for d in detectors if d is not victim]
    run.wait(lambda: run.closed(client, keys), 100, "every camera's session complete")

    topics = Topics(settings.topic_prefix)
    sent = frames_sent(read_topic(settings, topics.frames, CAMERAS * 90))
    total_sent = sum(map(len, sent.values()))
    detections = read_topic(settings, topics.detections, total_sent)
    applied, copies = first_detections(detections)
    assert sorted(sent) == sorted(f"s-{cam}" for cam in run.cameras)
    assert at_kill < total_sent, "the detector was killed mid-run"
    for session, frames in sent.items():
        totals = {k: int(float(v)) for k, v in client.hgetall(keys.totals(session)).items()}
        first = applied[session]
        # every frame published was handled, and nothing else was
        assert {(d["run_id"], d["seq"]) for d in first} == frames, session
        # exactly once: the Redis totals are those of one detection per frame
        assert totals["frames"] + totals.get("skipped_frames", 0) == len(frames), (session, totals)
        assert totals["faces"] == sum(len(d["faces"]) for d in first), (session, totals)
        assert totals["frames_with_faces"] == sum(1 for d in first if d["faces"]), session
        assert totals["faces"] > 0, session  # the clip has a face in every frame

    # Spread: every detector held partitions with cameras and produced detections.
    owners = owners_by_camera(detections)
    ids = {d.name: d.name.split(":", 1)[1] for d in detectors}
    assert {ids[d.name] for d in detectors} <= {i for runs in owners.values() for i in runs}
    # One detector at a time per camera: one owner, or one hand-over at the one rebalance
    # (the kill); never back and forth. The victim's cameras went to a survivor, which
    # replayed what the victim had not committed (`copies` redeliveries, which the
    # aggregator dropped: the totals above are exact).
    victim_id = ids[victim.name]
    handed_over = 0
    for camera, runs in owners.items():
        assert len(runs) <= 2, (camera, runs)
        assert victim_id not in runs[1:], (camera, runs)
        if runs[0] == victim_id and len(runs) == 2:
            handed_over += 1
    assert handed_over >= 1, owners
    first, second = (assigned_partitions(d) for d in survivors)
    assert first.isdisjoint(second)  # never two owners of a partition
    assert first | second == {str(p) for p in range(PARTITIONS)}  # the victim's went to them
    # Both aggregators held partitions, and every partition has a camera (camera_ids).
    assert run.spread(aggregators) is not None
    client.close()
    print(f"frames {total_sent}, applied at kill {at_kill}, redelivered detections {copies}, "
          f"cameras handed over {handed_over}, holdings {holdings}")
