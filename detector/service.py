"""The Kafka loop: poll frames, batch, classify, produce detections, then commit.

At-least-once: input offsets are committed only after the detections (and dead letters)
of those frames have been produced and the producer flushed. Frames are batched across
partitions, so one inference call serves several cameras. A partition revoked in a
rebalance first has its pending batch flushed and committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import CommitFailedError, KafkaError, MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata

from detector.batching import FrameBatch
from detector.metrics import DetectorMetrics
from detector.pipeline import FramePipeline, PoisonFrame
from detector.settings import DetectorSettings
from moodstream.clients import ensure_topics, kafka_consumer, kafka_producer
from moodstream.schemas import FrameHeaders, MessageError
from moodstream.topics import Topics

log = logging.getLogger(__name__)

STATS_EVERY_S = 30.0


class _FlushOnRevoke(ConsumerRebalanceListener):
    def __init__(self, service: "DetectorService"):
        self.service = service

    def on_partitions_revoked(self, revoked):
        self.service.flush()  # hand the work on before another worker gets these partitions

    def on_partitions_assigned(self, assigned):
        self.service.assigned = sorted(tp.partition for tp in assigned)
        log.info("partitions assigned: %s", ",".join(map(str, self.service.assigned)) or "none")


class DetectorService:
    def __init__(self, settings: DetectorSettings, pipeline: FramePipeline | None = None,
                 stop: threading.Event | None = None):
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.stop = stop or threading.Event()
        self.pipeline: FramePipeline | None = None
        self.batch = FrameBatch(1, settings.max_wait_ms)
        if pipeline is not None:
            self.attach(pipeline)
        self.counters: Counter = Counter()
        self.metrics = DetectorMetrics()
        self.assigned: list[int] = []
        self.consumer = self.producer = None

    def connect(self) -> None:
        """Create topics and clients; raises ServiceUnavailable when the broker is down."""
        ensure_topics(self.settings, self.topics)
        self.producer = kafka_producer(self.settings, client_id=f"moodstream-{self.settings.group_id}")
        # Measured on the embedded broker: with kafka-python's 500 ms fetch_max_wait_ms an idle
        # detector first saw a burst's frames 130-220 ms after capture, with 50 ms ~25 ms.
        # So a fetch waits no longer than the batch waits for crops.
        fetch_wait_ms = int(min(500, max(10, self.settings.max_wait_ms)))
        self.consumer = kafka_consumer(self.settings, self.settings.group_id, [self.topics.frames],
                                       max_poll_records=max(16, self.settings.max_batch or 64),
                                       fetch_max_wait_ms=fetch_wait_ms)
        self.consumer.subscribe([self.topics.frames], listener=_FlushOnRevoke(self))

    def attach(self, pipeline: FramePipeline) -> None:
        """The loaded pipeline (connect first, so a dead broker fails before the slow load)."""
        self.pipeline = pipeline
        self.batch = self._new_batch()

    def _new_batch(self) -> FrameBatch:
        return FrameBatch(self.pipeline.max_batch, self.settings.max_wait_ms)

    def run(self) -> None:
        """Until stop is set; the pending batch is flushed on the way out."""
        next_stats = time.monotonic() + STATS_EVERY_S
        try:
            while not self.stop.is_set():
                wait_ms = int(self.batch.wait_left_s() * 1000) if not self.batch.empty else 500
                polled = self.consumer.poll(timeout_ms=max(1, wait_ms))
                self.counters["polls_with_records"] += bool(polled)
                for records in polled.values():
                    for record in records:
                        self.handle(record)
                if self.batch.due:
                    self.flush()
                if time.monotonic() >= next_stats:
                    self.log_stats()
                    next_stats = time.monotonic() + STATS_EVERY_S
        finally:
            self.flush()
            self.log_stats()

    def handle(self, record) -> None:
        partition = (record.topic, record.partition)
        try:
            headers = FrameHeaders.from_kafka(record.headers)
            frame = self.pipeline.prepare(record.value, headers, source=record)
        except (MessageError, PoisonFrame) as exc:
            self.dead_letter(record, str(exc))
            self.batch.settle(partition, record.offset)
        except Exception as exc:  # noqa: BLE001 - one odd frame must not crash-loop the group
            log.exception("frame %s[%d]@%d failed", record.topic, record.partition, record.offset)
            self.dead_letter(record, f"processing error: {type(exc).__name__}: {exc}")
            self.batch.settle(partition, record.offset)
        else:
            self.batch.add(frame, partition, record.offset)
        if self.batch.full:
            self.flush()

    def dead_letter(self, record, reason: str) -> None:
        kind = reason.split(":")[0]
        self.counters["deadletter"] += 1
        self.counters[f"deadletter:{kind}"] += 1
        self.metrics.deadletters.labels(kind).inc()
        log.warning("dead-letter %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
        headers = [(k, v) for k, v in (record.headers or []) if k not in ("reason", "source_topic")]
        headers += [("reason", reason.encode()), ("source_topic", record.topic.encode())]
        try:
            self.producer.send(self.topics.deadletter, key=record.key, value=record.value or b"",
                               headers=headers)
        except MessageSizeTooLargeError:
            # Bigger than our producer may send: keep the evidence, not the bytes, rather
            # than fail on this record forever.
            size = str(len(record.value or b"")).encode()
            self.producer.send(self.topics.deadletter, key=record.key, value=b"",
                               headers=headers + [("value_dropped_bytes", size)])

    def flush(self) -> None:
        """Classify the batch, produce its detections, flush, then commit its offsets."""
        batch = self.batch
        if batch.empty:
            return
        self.batch = self._new_batch()
        classify_ms = self.pipeline.classify(batch.frames)
        for message in self.pipeline.messages(batch.frames, classify_ms):
            self.producer.send(self.topics.detections, key=message.camera_id.encode(),
                               value=message.to_bytes())
            self.counters["frames"] += 1
            self.counters["faces"] += len(message.faces)
            self.counters["excluded_faces"] += message.excluded_faces
            self.metrics.observe(message)
        self.counters["flushes"] += 1
        if batch.crops:
            self.counters["inference_calls"] += 1
            self.metrics.inference_calls.inc()
        self.producer.flush()
        self.commit(batch.offsets)

    def commit(self, offsets: dict) -> None:
        if not offsets:
            return
        payload = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
        try:
            self.consumer.commit(payload)
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on (rebalance): the new owner re-reads these frames; the
            # aggregator counts a frame once, so a redelivery is harmless.
            self.counters["commit_failed"] += 1
            log.warning("offset commit failed (%s); frames will be redelivered", type(exc).__name__)

    def log_stats(self) -> None:
        log.info("stats %s", " ".join(f"{k}={v}" for k, v in sorted(self.counters.items())))

    def close(self) -> None:
        self.metrics.close()
        for client in (self.consumer, self.producer):
            if client is not None:
                try:
                    client.close()
                except Exception as exc:  # noqa: BLE001 - closing must not mask the real error
                    log.warning("closing %s failed: %s", type(client).__name__, exc)
