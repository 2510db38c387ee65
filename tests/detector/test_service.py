"""`python -m detector` as a process on the real embedded broker (Tansu)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from moodstream.clients import ensure_topics
from moodstream.schemas import DetectionMessage, FrameHeaders
from moodstream.settings import CommonSettings
from moodstream.topics import Topics
from tests.conftest import REPO
from tests.detector.conftest import MODEL, clip_frames, jpeg
from tests.detector.test_jpeg import encode, patched

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN = "run-7"


def start_detector(env: dict, *args: str, log: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "detector", "--model", str(MODEL),
                             "--max-wait-ms", "100", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=log.open("w") if log else subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen, signalled: bool = False) -> tuple[int, str]:
    if not signalled and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err or ""


def publish_frames(env: dict, cameras: list[str], frames) -> list[tuple[str, int]]:
    settings = CommonSettings.load(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                                   topic_prefix=env["MOODSTREAM_TOPIC_PREFIX"])
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    sent = []
    for seq, frame in enumerate(frames):
        for camera in cameras:
            headers = FrameHeaders(camera, f"{camera}-s", seq, time.time(), seq / 30,
                                   *frame.shape[1::-1], run_id=RUN)
            producer.send(Topics(settings.topic_prefix).frames, key=camera.encode(),
                          value=jpeg(frame), headers=headers.to_kafka())
            sent.append((camera, seq))
    producer.flush()
    producer.close()
    return sent


def read_topic(env: dict, topic: str, want: int, timeout_s: float = 90.0, procs=()) -> list:
    consumer = KafkaConsumer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                             auto_offset_reset="earliest", enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(4)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records, deadline = [], time.monotonic() + timeout_s
    try:
        while len(records) < want and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            dead = [p for p in procs if p.poll() is not None]
            assert not dead, f"detector exited early: {stop(dead[0])[1][-2000:]}"
    finally:
        consumer.close()
    return records


def committed(env: dict, group: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], group_id=group,
                             enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(4))
    finally:
        consumer.close()


def test_detections_for_every_frame_poison_to_deadletter_and_offsets_committed(stack_env):
    topics = Topics(stack_env["MOODSTREAM_TOPIC_PREFIX"])
    frames = clip_frames("single_face_smile.mp4", 6)
    sent = publish_frames(stack_env, ["cam-a", "cam-b"], frames)
    producer = KafkaProducer(bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"])
    good = FrameHeaders("cam-a", "cam-a-s", 999, time.time(), 0.0, run_id=RUN).to_kafka()
    bomb = patched(encode(), width=30_000, height=30_000)  # ~1 KB that would decode to 2.7 GB
    poison = [(b"", good, "empty frame"), (b"\xff\xd8\xff\xe0broken", good, "corrupt frame"),
              (jpeg(frames[0]), [], "missing frame header"),
              (b"\xff" * (600 << 10), good, "oversized frame"),
              (bomb, good, "oversized frame: 30000x30000 (JPEG header)")]
    for value, headers, _ in poison:
        producer.send(topics.frames, key=b"cam-a", value=value, headers=headers)
    producer.flush()
    producer.close()
    attributable = [p for p in poison if p[1]]

    proc = start_detector(stack_env | {"MOODSTREAM_DETECTOR_MAX_JPEG_BYTES": str(512 << 10)})
    try:
        detections = read_topic(stack_env, topics.detections, len(sent) + len(attributable),
                                procs=[proc])
        dead = read_topic(stack_env, topics.deadletter, len(poison), timeout_s=20, procs=[proc])
        time.sleep(1.0)
    finally:
        code, err = stop(proc)
    assert code == 0, err[-2000:]
    messages = [DetectionMessage.from_bytes(r.value) for r in detections]
    detected = [m for m in messages if not m.skipped]
    assert sorted((m.camera_id, m.seq) for m in detected) == sorted(sent)
    assert all(r.key == m.camera_id.encode() for r, m in zip(detections, messages))
    assert sum(len(m.faces) == 1 for m in detected) >= 0.9 * len(detected)
    assert all(m.timing.e2e_ms > 0 and m.timing.decode_ms > 0 for m in detected)
    assert all(m.run_id == RUN for m in messages)
    # every dead-lettered frame whose headers parsed is also handled on the detections topic
    skipped = [m for m in messages if m.skipped]
    assert sorted(m.skipped for m in skipped) == sorted(r.split(":")[0] for _, _, r in attributable)
    assert all((m.camera_id, m.seq, m.faces) == ("cam-a", 999, []) for m in skipped)
    reasons = sorted(dict(r.headers)["reason"].decode() for r in dead)
    assert len(reasons) == len(poison)
    for _, _, reason in poison:
        assert any(r.startswith(reason) for r in reasons), reasons
    assert all(dict(r.headers)["source_topic"] == topics.frames.encode() for r in dead)
    assert all(r.value == b"" for r in dead)  # no pixels leave the detector, not even here
    assert sorted(int(dict(r.headers)["original_bytes"]) for r in dead) == sorted(
        len(value) for value, _, _ in poison)
    assert f"deadletter={len(poison)}" in err
    assert committed(stack_env, "detector", topics.frames) == len(sent) + len(poison)


def test_frames_whose_detections_are_not_acknowledged_are_not_committed_but_redelivered(
        kafka_server, unique_prefix, yunet, emotion_model):
    """Frames come from the shared broker; detections go to a second broker that is down.
    (Tansu ignores max.message.bytes and auto-creates topics, so an unreachable broker is
    the real refusal it offers.) Nothing may be committed while the sends fail; once the
    broker is back every frame must be re-read and delivered, and only then committed."""
    from detector.pipeline import FramePipeline
    from detector.service import DetectorService, detector_producer
    from detector.settings import DetectorSettings
    from detector.tracking import Trackers
    from moodstream.embedded import EmbeddedKafka, free_port

    settings = DetectorSettings.load(
        kafka_bootstrap_servers=kafka_server.bootstrap, topic_prefix=unique_prefix,
        max_wait_ms=50, delivery_timeout_ms=2000, connect_timeout_s=2)
    output = EmbeddedKafka(port=free_port()).start()
    out_settings = settings.model_copy(update={"kafka_bootstrap_servers": output.bootstrap})
    out_env = {"KAFKA_BOOTSTRAP_SERVERS": output.bootstrap}
    topics, service, worker = Topics(unique_prefix), None, None
    try:
        ensure_topics(out_settings)
        service = DetectorService(settings, FramePipeline(yunet, emotion_model, Trackers()))
        service.new_producer = lambda: detector_producer(out_settings)
        service.connect()
        for topic in (topics.detections, topics.deadletter):  # known, so sends queue up
            assert service.producer.partitions_for(topic)
        output.stop()
        env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_server.bootstrap,
               "MOODSTREAM_TOPIC_PREFIX": unique_prefix}
        sent = publish_frames(env, ["cam-a"], clip_frames("single_face_smile.mp4", 12)[:4])
        empty = FrameHeaders("cam-a", "cam-a-s", 4, time.time(), 0.2, run_id=RUN).to_kafka()
        publish_raw(env, topics.frames, b"", empty)
        worker = threading.Thread(target=service.run, daemon=True)
        worker.start()

        # Every frame read twice or more (re-read, not skipped): until its first detections
        # are out, the detector flushes batches by time, so a failed batch may be small.
        wait_until(lambda: service.counters["delivery_failed"] >= 2
                   and service.counters["records"] >= 2 * (len(sent) + 1), 90,
                   "two failed batches and every frame read twice")
        assert committed(env, "detector", topics.frames) == 0
        assert service.loop.counts["rewinds"] >= 2 and service.loop.counts["commits"] == 0
        assert worker.is_alive()

        output = EmbeddedKafka(port=output.port).start()  # the broker is back (empty)
        ensure_topics(out_settings)
        detections = read_topic(out_env, topics.detections, len(sent) + 1, procs=())
        wait_until(lambda: committed(env, "detector", topics.frames) == len(sent) + 1, 60,
                   "the commit after delivery")
    finally:
        if service is not None:
            service.stop.set()
            if worker is not None:
                worker.join(30)
            service.close()
        output.stop()
    messages = [DetectionMessage.from_bytes(r.value) for r in detections]
    assert sorted({m.seq for m in messages}) == [0, 1, 2, 3, 4]
    assert [m.skipped for m in messages if m.seq == 4] == ["empty frame"]
    assert all(m.run_id == RUN for m in messages)


def publish_raw(env: dict, topic: str, value: bytes, headers: list) -> None:
    producer = KafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    producer.send(topic, key=b"cam-a", value=value, headers=headers)
    producer.flush()
    producer.close()


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.25)


def test_two_workers_split_partitions_and_their_work_is_disjoint(stack_env, tmp_path):
    topics = Topics(stack_env["MOODSTREAM_TOPIC_PREFIX"])
    cameras = [f"cam{i}" for i in range(8)]
    ensure_topics(CommonSettings.load(kafka_bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"],
                                      topic_prefix=topics.prefix))
    logs = [tmp_path / f"w{i}.log" for i in range(2)]
    workers = [start_detector(stack_env, "--detector-id", f"w{i}", log=logs[i]) for i in range(2)]
    try:
        wait_for_split(logs, workers)  # both joined the group before any frame arrives
        sent = publish_frames(stack_env, cameras, clip_frames("single_face_smile.mp4", 12))
        detections = read_topic(stack_env, topics.detections, len(sent), procs=workers)
    finally:
        for worker in workers:  # signal both at once, so neither inherits the other's partitions
            worker.send_signal(signal.SIGTERM)
        results = [stop(w, signalled=True) for w in workers]
    assert [code for code, _ in results] == [0, 0], results[0][1][-1500:] + results[1][1][-1500:]
    messages = [DetectionMessage.from_bytes(r.value) for r in detections]
    seen = Counter((m.camera_id, m.seq) for m in messages)
    assert sorted(seen) == sorted(sent) and set(seen.values()) == {1}  # each frame once
    workers_by_camera: dict[str, set] = {}
    for message in messages:
        workers_by_camera.setdefault(message.camera_id, set()).add(message.detector_id)
    assert all(len(w) == 1 for w in workers_by_camera.values()), workers_by_camera
    assert set().union(*workers_by_camera.values()) == {"w0", "w1"}
    assigned = [_last_assignment(log.read_text()) for log in logs]
    assert not assigned[0] & assigned[1] and assigned[0] | assigned[1] == {0, 1, 2, 3}


def wait_for_split(logs: list[Path], procs, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [log.read_text()[-1500:] for log in logs]
        texts = [log.read_text() for log in logs]
        if all("partitions assigned: " in text for text in texts):
            parts = [_last_assignment(text) for text in texts]
            if all(parts) and not parts[0] & parts[1]:
                return
        time.sleep(0.5)
    pytest.fail("the two workers never split the partitions")


def _last_assignment(log: str) -> set[int]:
    """Partitions named by the worker's last 'partitions assigned: 0,2' line before its stop."""
    lines = log.split("received SIGTERM")[0].splitlines()
    line = [l for l in lines if "partitions assigned: " in l][-1]
    named = line.split("partitions assigned: ", 1)[1].strip()
    return set() if named == "none" else {int(p) for p in named.split(",")}
