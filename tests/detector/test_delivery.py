"""Commit after acknowledgement, with fake clients whose sends fail (unit tests).

The same behaviour against the real broker: tests/detector/test_service.py
(test_frames_whose_detections_are_not_acknowledged_are_not_committed_but_redelivered).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
from kafka.future import Future

from detector.pipeline import FramePipeline
from detector.service import DetectorService
from detector.settings import DetectorSettings
from detector.tracking import Trackers
from moodstream.consumer import Backoff
from moodstream.schemas import DetectionMessage, FrameHeaders
from tests.detector.conftest import clip_frames, jpeg

FRAMES = "t.frames"


class Producer:
    """Fake producer: sends to a topic in `failing` fail (in the future, or at send() when
    `refuse`); `pending` sends never get an answer."""

    def __init__(self, failing=(), refuse=False, pending=False):
        self.failing, self.refuse, self.pending = set(failing), refuse, pending
        self.sent: list[tuple[str, bytes]] = []
        self.closed = False

    def send(self, topic, key=None, value=None, headers=None):
        if self.refuse and topic in self.failing:
            raise KafkaTimeoutError("no metadata within max_block_ms")
        self.sent.append((topic, value))
        if self.pending:
            return Future()
        if topic in self.failing:
            return Future().failure(NotLeaderForPartitionError("leader moved"))
        return Future().success(None)

    def flush(self, timeout=None):
        if self.pending:
            raise KafkaTimeoutError("Timeout waiting for future")

    def close(self, timeout=None):
        self.closed = True

    def detections(self, topic="moodstream.detections") -> list[DetectionMessage]:
        return [DetectionMessage.from_bytes(v) for t, v in self.sent if t == topic]


class Consumer:
    def __init__(self, owned=((FRAMES, 0), (FRAMES, 1))):
        self.owned = {TopicPartition(*tp) for tp in owned}
        self.commits: list[dict] = []
        self.seeks: dict = {}

    def assignment(self):
        return set(self.owned)

    def seek(self, tp, offset):
        self.seeks[(tp.topic, tp.partition)] = offset

    def commit(self, offsets):
        self.commits.append({(tp.topic, tp.partition): o.offset for tp, o in offsets.items()})


def record(offset: int, partition: int = 0, value: bytes | None = None, seq: int = 0,
           headers: list | None = None):
    frame = clip_frames("single_face_smile.mp4", 4)[0]
    if headers is None:
        headers = FrameHeaders("c", "s", seq, time.time(), 0.0, run_id="r1").to_kafka()
    return SimpleNamespace(topic=FRAMES, partition=partition, offset=offset, key=b"c",
                           value=jpeg(frame) if value is None else value, headers=headers)


@pytest.fixture
def service(yunet, emotion_model):
    made = []

    def new_producer():  # what _replace_producer gets after a failure: a healthy one
        made.append(Producer())
        return made[-1]

    svc = DetectorService(DetectorSettings.load(),
                          FramePipeline(yunet, emotion_model, Trackers(), max_batch=64))
    svc.loop.attach(Consumer())
    svc.new_producer, svc.loop.backoff = new_producer, Backoff(0.0, 0.0)
    svc.made = made
    return svc


def test_a_failed_detection_is_not_committed_and_the_batch_is_read_again(service):
    broken = service.producer = Producer(failing={"moodstream.detections"})
    batch = [record(5), record(6, seq=1), record(3, partition=1, seq=2)]
    for r in batch:
        service.handle(r)
    assert service.flush() is False
    assert service.consumer.commits == []  # the failure is not committed...
    assert service.consumer.seeks == {(FRAMES, 0): 5, (FRAMES, 1): 3}  # ...but re-read
    assert service.counters["delivery_failed"] == 1 and service.loop.rewound == {(FRAMES, 0), (FRAMES, 1)}
    assert broken.closed and service.producer is service.made[0]  # a fresh producer
    for r in batch:  # what the rewind reads again
        service.handle(r)
    assert service.flush() is True
    assert service.consumer.commits == [{(FRAMES, 0): 7, (FRAMES, 1): 4}]
    assert sorted(m.seq for m in service.made[0].detections()) == [0, 1, 2]


def test_a_failed_dead_letter_blocks_the_commit_too(service):
    service.producer = Producer(failing={"moodstream.deadletter"})
    service.handle(record(5))
    service.handle(record(6, value=b""))  # dead-lettered
    assert service.flush() is False and service.consumer.commits == []
    assert service.consumer.seeks == {(FRAMES, 0): 5}


def test_a_skipped_detection_that_fails_blocks_the_commit(service):
    service.producer = Producer(failing={"moodstream.detections"})
    service.handle(record(9, value=b"\xff\xd8garbage"))  # only a dead letter and a skipped one
    assert service.flush() is False and service.consumer.commits == []


def test_a_send_refused_at_once_is_a_failed_delivery_not_a_crash(service):
    service.producer = Producer(failing={"moodstream.deadletter", "moodstream.detections"},
                                refuse=True)
    service.handle(record(5))
    service.handle(record(6, value=b""))
    assert service.flush() is False and service.consumer.commits == []


def test_a_send_still_unanswered_after_the_flush_counts_as_failed(service):
    service.producer = Producer(pending=True)
    service.handle(record(5))
    assert service.flush() is False and service.consumer.commits == []


def test_records_polled_behind_a_failed_batch_are_left_to_the_rewind(service):
    service.pipeline.max_batch = 1  # every frame with a face fills the batch
    service.batch = service._new_batch()
    service.producer = Producer(failing={"moodstream.detections"})
    polled = {TopicPartition(FRAMES, 0): [record(5), record(6, seq=1)],
              TopicPartition(FRAMES, 1): [record(3, partition=1, seq=2)]}
    service.loop.take(polled)
    # offset 5 filled the batch and failed: 6 waits for the rewind; partition 1 goes on with
    # the fresh producer and is committed on its own
    assert service.consumer.seeks == {(FRAMES, 0): 5}
    assert service.consumer.commits == [{(FRAMES, 1): 4}]
    assert [m.seq for m in service.producer.detections()] == [2]


def test_a_revoked_partition_is_left_to_its_next_owner(service):
    service.loop.attach(Consumer(owned=[(FRAMES, 1)]))
    service.producer = Producer(failing={"moodstream.detections"})
    service.handle(record(5))
    service.handle(record(3, partition=1, seq=1))
    assert service.flush(backoff=False) is False
    assert service.consumer.seeks == {(FRAMES, 1): 3} and service.consumer.commits == []


def test_dead_lettered_frames_are_announced_as_skipped_when_their_headers_parsed(service):
    service.producer = Producer()
    service.handle(record(1, value=b""))
    service.handle(record(2, headers=[("camera_id", b"c")]))  # unattributable
    service.handle(record(3, seq=4))
    assert service.flush() is True
    [skipped, detected] = service.producer.detections()
    assert (skipped.skipped, skipped.seq, skipped.run_id, skipped.faces) == ("empty frame", 0, "r1", [])
    assert (detected.skipped, detected.seq, detected.run_id) == ("", 4, "r1")
    assert service.deadletters.counts == {"empty frame": 1, "missing frame header(s)": 1}
    assert service.consumer.commits == [{(FRAMES, 0): 4}]


def test_a_frame_whose_detection_cannot_be_built_is_dead_lettered(service, monkeypatch):
    service.producer = Producer()
    monkeypatch.setattr(service.pipeline, "message",
                        lambda frame, ms: (_ for _ in ()).throw(ValueError("box outside frame")))
    service.handle(record(5))
    assert service.flush() is True
    [skipped] = service.producer.detections()
    assert skipped.skipped == "processing error"
    assert service.deadletters.counts == {"processing error": 1}
    assert service.consumer.commits == [{(FRAMES, 0): 6}]


def test_a_model_failure_retries_the_batch_instead_of_dropping_it(service, monkeypatch):
    service.producer = Producer()
    monkeypatch.setattr(service.pipeline, "classify",
                        lambda frames: (_ for _ in ()).throw(RuntimeError("GPU out of memory")))
    service.handle(record(5))
    assert service.flush() is False
    assert service.consumer.commits == [] and service.consumer.seeks == {(FRAMES, 0): 5}
    assert service.deadletters.total == 0
