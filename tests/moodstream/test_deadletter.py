"""The shared dead-letter sender: evidence about a bad record, never its payload."""

from __future__ import annotations

import hashlib
import time
from types import SimpleNamespace

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from moodstream.deadletter import (COPIED_HEADER_VALUE_MAX_BYTES, COPIED_HEADERS_MAX,
                                   KEY_MAX_BYTES, REASON_MAX_BYTES, DeadLetterSender,
                                   reason_kind)


class RecordingProducer:
    def __init__(self):
        self.sent = []

    def send(self, topic, **record):
        self.sent.append((topic, record))
        return Future().success(None)


def record(value=b"\xff\xd8pixels", headers=None, key=b"cam-1", offset=41):
    return SimpleNamespace(topic="p.frames", partition=2, offset=offset, key=key, value=value,
                           headers=headers if headers is not None else [("camera_id", b"cam-1")])


def test_a_dead_letter_carries_evidence_and_no_pixels():
    producer = RecordingProducer()
    payload = b"\xff\xd8" + bytes(range(256)) * 40
    future = DeadLetterSender(producer, "p.deadletter").send(record(payload), "corrupt frame: x")
    assert future.succeeded()
    [(topic, sent)] = producer.sent
    headers = dict(sent["headers"])
    assert topic == "p.deadletter" and sent["value"] == b"" and sent["key"] == b"cam-1"
    assert headers["reason"] == b"corrupt frame: x" and headers["reason_kind"] == b"corrupt frame"
    assert headers["source_topic"] == b"p.frames"
    assert (headers["source_partition"], headers["source_offset"]) == (b"2", b"41")
    assert headers["original_bytes"] == str(len(payload)).encode()
    assert headers["original_sha256"] == hashlib.sha256(payload).hexdigest().encode()
    assert headers["camera_id"] == b"cam-1"  # the original's identity is kept


def test_the_reason_is_bounded_and_stays_valid_utf8():
    producer = RecordingProducer()
    DeadLetterSender(producer, "dl").send(record(), "processing error: " + "é" * 5000)
    reason = dict(producer.sent[0][1]["headers"])["reason"]
    assert len(reason) <= REASON_MAX_BYTES and reason.decode("utf-8").endswith("...")


def test_untrusted_headers_and_keys_are_bounded_and_cannot_spoof_ours():
    producer = RecordingProducer()
    hostile = [("reason", b"all fine"), ("source_topic", b"elsewhere")]
    hostile += [(f"h{i}", b"x" * 100_000) for i in range(100)] + [("x" * 500, b"long key")]
    DeadLetterSender(producer, "dl").send(record(headers=hostile, key=b"k" * 10_000), "empty frame")
    sent = producer.sent[0][1]
    headers = sent["headers"]
    own = dict(headers)
    assert own["reason"] == b"empty frame" and own["source_topic"] == b"p.frames"
    copied = [(k, v) for k, v in headers if k.startswith("h")]
    assert len(copied) == COPIED_HEADERS_MAX
    assert all(len(v) == COPIED_HEADER_VALUE_MAX_BYTES for _, v in copied)
    assert len(sent["key"]) == KEY_MAX_BYTES
    assert sum(len(k) + len(v) for k, v in headers) < 8 * 1024


def test_counts_by_kind_and_kinds_never_hold_attacker_values():
    sender = DeadLetterSender(RecordingProducer(), "dl")
    for reason in ("corrupt frame: no SOI", "corrupt frame: truncated",
                   "invalid camera_id 'evil-123': use letters", "capture_ts 1e+30 outside [...]",
                   "", "missing frame header(s): seq"):
        sender.send(record(), reason)
    assert sender.counts == {"corrupt frame": 2, "invalid camera_id": 1, "capture_ts": 1,
                             "unknown": 1, "missing frame header(s)": 1}
    assert sender.total == 6
    assert reason_kind("x" * 500 + ": y") == "x" * 40


def test_a_producer_refusing_synchronously_yields_a_failed_future_not_an_exception():
    class Refusing:
        def send(self, topic, **record):
            raise KafkaTimeoutError("no metadata within max_block_ms")

    future = DeadLetterSender(Refusing(), "dl").send(record(value=None, key=None), "empty frame")
    assert future.failed() and isinstance(future.exception, KafkaTimeoutError)


@pytest.mark.integration
def test_dead_letters_round_trip_through_the_real_broker(kafka_server, unique_prefix):
    topic = f"{unique_prefix}.deadletter"
    producer = KafkaProducer(bootstrap_servers=kafka_server.bootstrap, acks="all")
    sender = DeadLetterSender(producer, topic)
    futures = [sender.send(record(b"\xff\xd8" * 50_000, offset=i), "oversized frame: big")
               for i in range(3)]
    producer.flush(30)
    producer.close()
    assert all(f.succeeded() for f in futures)
    consumer = KafkaConsumer(bootstrap_servers=kafka_server.bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or [0]]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    got, deadline = [], time.monotonic() + 30
    while len(got) < 3 and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend(batch)
    consumer.close()
    assert sorted(int(dict(r.headers)["source_offset"]) for r in got) == [0, 1, 2]
    assert all(r.value == b"" and dict(r.headers)["original_bytes"] == b"100000" for r in got)
