"""The detector's step on the shared consumer loop (moodstream.consumer): frames are
batched, classified and their detections produced; the loop commits a batch once
confirm() says every send of it was acknowledged, and rewinds it otherwise.

Commit after acknowledgement. A batch's input offsets are committed only once every send
made for it is acknowledged by the broker: its detections, the dead letters of its bad
frames and their "skipped" detections (producer.flush(), then each future's result). A send
the broker refused, or left unanswered for delivery_timeout_ms, fails the whole batch:

- nothing of it is committed;
- the loop rewinds the consumer to the batch's first offset in each partition it still
  owns, so the batch's frames are read and processed again; records of those partitions
  already polled behind the batch are dropped, the rewind re-reads them too. A partition
  lost in a rebalance needs no rewind: its next owner starts from the last commit;
- the producer is replaced: one whose idempotence state the broker lost fails every later
  send (seen on the embedded broker after a restart);
- the loop waits (capped exponential backoff, 0.5 to 5 s) and carries on polling.

Why this and not raising: it never loses a frame (no offset is committed ahead of
delivered output) and never crash-loops (the process stays up and in its group, retrying
while the broker is unhealthy); a restart would come back to the same batch and the same
broker anyway. The price is duplicates: frames of a failed batch whose detections did get
through are published again, and the aggregator applies a frame once (by camera, session,
run and seq). What is sent is small and bounded (no pixels, no payload in dead letters),
so an undeliverable batch means an unhealthy broker, not a bad frame: each one is logged
and counted (delivery_failed). A frame whose detection cannot even be built is
dead-lettered, so it cannot hold its partition back.

Bad frames go to the dead-letter topic (moodstream.deadletter: no pixels) and, when their
headers parsed, also to the detections topic as a DetectionMessage with `skipped` = the
reason's kind and no faces, so the aggregator counts the frame as handled.

Frames are batched across partitions, so one inference call serves several cameras. A
partition revoked in a rebalance first has its pending batch handed on (drain(), and
committed when delivered).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from prometheus_client import Counter as PromCounter

from detector.batching import FrameBatch
from detector.metrics import DetectorMetrics
from detector.pipeline import FramePipeline, PendingFrame, PoisonFrame
from detector.settings import DetectorSettings
from moodstream.clients import ensure_topics, kafka_consumer, kafka_producer
from moodstream.consumer import ConsumerLoop, Handoff, Step, close_quietly, unacknowledged
from moodstream.deadletter import DeadLetterSender, reason_kind, send_or_fail
from moodstream.schemas import SKIPPED_STALE, DetectionMessage, FrameHeaders, MessageError
from moodstream.topics import Topics

log = logging.getLogger(__name__)

STATS_EVERY_S = 30.0
FLUSH_MARGIN_S = 5.0  # beyond delivery_timeout_ms, by which every send has its answer
# Poll timeout while frames are in the pool: how late a finished frame may be noticed.
PENDING_POLL_MS = 5
# Poll timeout with nothing pending: how late a stop (SIGTERM) is noticed, since a poll
# cannot be interrupted; at 500 ms `analyze` waited ~0.3 s on average for its detector.
IDLE_POLL_MS = 100


def detector_producer(settings: DetectorSettings):
    """A producer whose every send is answered within delivery_timeout_ms, and that blocks
    a send() no longer than that either (e.g. waiting for a topic's metadata)."""
    delivery_ms = settings.delivery_timeout_ms
    return kafka_producer(settings, client_id=f"moodstream-{settings.group_id}",
                          delivery_timeout_ms=delivery_ms,
                          request_timeout_ms=min(15_000, delivery_ms // 2),
                          max_block_ms=min(10_000, delivery_ms))


@dataclass
class _Sent:
    """A handed-off batch: its detections, and the error that stopped it being sent."""

    batch: FrameBatch
    messages: list[DetectionMessage] = field(default_factory=list)
    error: Exception | None = None


class DetectorService(Step):
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
        self.deadletters = DeadLetterSender(None, self.topics.deadletter)
        self.loop = ConsumerLoop(self, self.stop)
        self.metrics_stale = PromCounter(
            "detector_stale_frames", "Live frames not analysed: read more than max_lag_s "
            "after capture (the detector was behind)", ["camera"], registry=self.metrics.registry)
        self._connected_at: float | None = None
        self._first_record_at: float | None = None
        self._delivered_once = False
        self._next_stats = time.monotonic() + STATS_EVERY_S

    @property
    def consumer(self):
        return self.loop.consumer

    @property
    def assigned(self) -> list[int]:
        return sorted(tp.partition for tp in self.loop.assigned)

    @property
    def producer(self):
        return self.deadletters.producer

    @producer.setter
    def producer(self, producer) -> None:
        self.deadletters.producer = producer  # one producer for detections and dead letters

    def connect(self) -> None:
        """Create topics and clients; raises ServiceUnavailable when the broker is down."""
        ensure_topics(self.settings, self.topics)
        self.producer = self.new_producer()
        # Measured on the embedded broker: with kafka-python's 500 ms fetch_max_wait_ms an idle
        # detector first saw a burst's frames 130-220 ms after capture, with 50 ms ~25 ms.
        # So a fetch waits no longer than the batch waits for crops.
        fetch_wait_ms = int(min(500, max(10, self.settings.max_wait_ms)))
        self.loop.attach(kafka_consumer(
            self.settings, self.settings.group_id, [self.topics.frames],
            assign=self.settings.assign, listener=self.loop.listener,
            max_poll_records=max(16, self.settings.max_batch or 64),
            fetch_max_wait_ms=fetch_wait_ms))
        self._connected_at = time.monotonic()

    def new_producer(self):
        return detector_producer(self.settings)

    def attach(self, pipeline: FramePipeline) -> None:
        """The loaded pipeline (connect first, so a dead broker fails before the slow load)."""
        self.pipeline = pipeline
        self.batch = self._new_batch()

    def _new_batch(self) -> FrameBatch:
        return FrameBatch(self.pipeline.max_batch, self.settings.max_wait_ms)

    def run(self) -> None:
        """Until stop is set; the pending batch is handed on on the way out."""
        try:
            self.loop.run()
        finally:
            self.log_stats()

    # --- the loop's hooks (moodstream.consumer.Step) ---
    def poll_timeout_ms(self) -> int:
        if self.batch.empty:
            return IDLE_POLL_MS
        if self.batch.in_flight:  # a frame the pool finishes cannot wake a poll: look again soon
            return PENDING_POLL_MS
        return int(self.batch.wait_left_s() * 1000)

    def process(self, records) -> Iterator[Handoff]:
        """One poll's records into the batch; its ready head is handed on as soon as it is
        worth an inference call (see _ready_handoffs), the rest carried over."""
        for record in records:
            self.handle(record)
            yield from self._ready_handoffs()
        yield from self.on_idle()

    def on_idle(self) -> list[Handoff]:
        """After each poll: the ready head also goes out when nothing is left in the pool,
        since waiting for more crops then only adds latency (a CPU classifies at about the
        same cost per face whatever the batch)."""
        if time.monotonic() >= self._next_stats:
            self.log_stats()
            self._next_stats = time.monotonic() + STATS_EVERY_S
        return self._ready_handoffs(settled=not self.batch.in_flight)

    def _ready_handoffs(self, settled: bool = False) -> list[Handoff]:
        """The batch's ready head (frames the pool has finished, in input order), when it
        holds max_batch crops, when the batch has waited max_wait_ms, when `settled` (no
        frame left in the pool) or, until the first detections are out, at once (a backlog
        at start-up would otherwise show nothing for a while). Frames still in the pool stay
        for the next hand-off, so the pool keeps working while this one is classified, sent
        and committed."""
        batch = self.batch
        if batch.empty:
            return []
        records, crops = batch.ready_head()
        worth = (settled or crops >= batch.max_batch or batch.wait_left_s() <= 0
                 or not self._delivered_once)
        if not records or not worth:
            return []
        handoff = self._hand_off(batch.take_ready())
        if batch.in_flight:  # handed on without waiting for these: the stall this avoids
            self.counters["handoffs_with_frames_in_flight"] += 1
        return [handoff]

    def drain(self) -> list[Handoff]:
        """Everything pending, in-flight frames included (classify waits for them)."""
        if self.batch.empty:
            return []
        batch, self.batch = self.batch, self._new_batch()
        return [self._hand_off(batch)]

    def on_rewind(self, partitions) -> None:
        """A hand-off failed and these partitions were rewound: frames of theirs carried
        over behind it are read again, so they must not be handed on (and committed) now."""
        self.batch.drop(partitions)

    def confirm(self, handoff: Handoff) -> bool:
        """Every send of the batch acknowledged: count its detections (the loop commits).
        Else log it and replace the producer (the loop rewinds and backs off)."""
        sent: _Sent = handoff.work
        timeout_s = self.settings.delivery_timeout_ms / 1000.0 + FLUSH_MARGIN_S
        failures = ([sent.error] if sent.error is not None
                    else unacknowledged(self.producer.flush, sent.batch.sends, timeout_s))
        if failures:
            self._undelivered(sent.batch, failures)
            return False
        self._count_delivered(sent.messages)
        if sent.messages and not self._delivered_once:
            self._delivered_once = True
            log.info("first detections delivered %.2f s after connecting", self._since_connected())
        return True

    def flush(self, backoff: bool = True) -> bool:
        """Hand the pending batch on now, and commit it once delivered (else rewind it).
        Returns whether it was delivered."""
        return self.loop.settle(self.drain(), backoff=backoff)

    def handle(self, record) -> None:
        """Into the batch; dead-lettered (and announced as skipped) when unusable; announced
        as skipped "stale", unanalysed, when it is a live frame we read too late."""
        self.counters["records"] += 1
        if self._first_record_at is None:
            self._first_record_at = time.monotonic()
            log.info("first frame read %.2f s after connecting", self._since_connected())
        headers = None
        try:
            headers = FrameHeaders.from_kafka(record.headers)
            if self.is_stale(headers, record) and self.skip_stale(record, headers):
                return
            frame = self.pipeline.prepare(record.value, headers, source=record)
        except (MessageError, PoisonFrame) as exc:
            self.reject(record, headers, str(exc))
        except Exception as exc:  # noqa: BLE001 - one odd frame must not crash-loop the group
            log.exception("frame %s[%d]@%d failed", record.topic, record.partition, record.offset)
            self.reject(record, headers, f"processing error: {type(exc).__name__}: {exc}")
        else:
            self.batch.add(frame, (record.topic, record.partition), record.offset)

    def lag_s(self, headers: FrameHeaders, record, now: float | None = None) -> float:
        """How far behind this frame is: now minus the later of its capture time and its
        publish time (the record's timestamp). The later one, because a camera whose clock
        runs behind (RTSP sender reports) would otherwise look stale on every frame."""
        now = time.time() if now is None else now
        published = getattr(record, "timestamp", None)
        published_s = published / 1000.0 if isinstance(published, int) and published > 0 else 0.0
        return now - max(headers.capture_ts, published_s)

    def is_stale(self, headers: FrameHeaders, record) -> bool:
        """A live frame read more than max_lag_s after it was captured and published.
        Frames of files are never stale: their capture times say nothing about lag."""
        max_lag = self.settings.max_lag_s
        return bool(headers.live and max_lag > 0 and self.lag_s(headers, record) > max_lag)

    def skip_stale(self, record, headers: FrameHeaders) -> bool:
        """Not analysed: its "stale" skipped detection goes out with the batch (committed
        with it), so the aggregator counts the frame as handled and skipped. False (then
        the frame is processed as usual) when no detection can be built for its headers."""
        message = self.skipped(headers, SKIPPED_STALE)
        if message is None:
            return False
        self.counters["stale"] += 1
        self.metrics_stale.labels(headers.camera_id).inc()
        if self.counters["stale"] == 1 or self.counters["stale"] % 1000 == 0:
            log.warning("behind by %.1f s on live camera %s: skipping frames older than "
                        "%.1f s (%d so far)", self.lag_s(headers, record), headers.camera_id,
                        self.settings.max_lag_s, self.counters["stale"])
        self.batch.settle((record.topic, record.partition), record.offset, None, message)
        return True

    def _since_connected(self) -> float:
        return time.monotonic() - (self._connected_at or time.monotonic())

    def reject(self, record, headers: FrameHeaders | None, reason: str) -> None:
        sent = self.dead_letter(record, reason)
        skipped = self.skipped(headers, reason) if headers is not None else None
        self.batch.settle((record.topic, record.partition), record.offset, sent, skipped)

    def dead_letter(self, record, reason: str):
        """Send the dead letter; returns its future, which the batch's commit waits for."""
        self.metrics.deadletters.labels(reason_kind(reason)).inc()
        log.warning("dead-letter %s[%d]@%d: %s", record.topic, record.partition, record.offset,
                    reason[:300])
        return self.deadletters.send(record, reason)

    def skipped(self, headers: FrameHeaders, reason: str) -> DetectionMessage | None:
        try:
            return self.pipeline.skipped_message(headers, reason_kind(reason))
        except ValueError as exc:  # headers the detection schema refuses: dead letter only
            log.warning("no skipped detection for %s|%s|%d: %s", headers.camera_id,
                        headers.session_id, headers.seq, str(exc)[:200])
            return None

    def _hand_off(self, batch: FrameBatch) -> Handoff:
        """Classify the batch and send its detections; confirm() learns if they arrived."""
        sent = _Sent(batch)
        try:
            sent.messages = self._detections(batch)
        except Exception as exc:  # noqa: BLE001 - the model failed: retry the batch, never drop it
            log.exception("classifying a batch of %d frames failed", len(batch))
            sent.error = exc
        for message in sent.messages:
            batch.sends.append(send_or_fail(self.producer, self.topics.detections,
                                            key=message.camera_id.encode(),
                                            value=message.to_bytes()))
        return Handoff(batch.offsets, batch.starts, sent)

    def _detections(self, batch: FrameBatch) -> list[DetectionMessage]:
        """One message per entry, in input order; a frame whose message cannot be built is
        dead-lettered (and announced as skipped) instead."""
        frames = batch.frames
        classify_ms = self.pipeline.classify(frames)
        self.counters["flushes"] += 1
        if batch.crops:
            self.counters["inference_calls"] += 1
            self.metrics.inference_calls.inc()
        messages = []
        for entry in batch.entries:
            if isinstance(entry, DetectionMessage):
                messages.append(entry)
                continue
            try:
                messages.append(self.pipeline.message(entry, classify_ms))
            except Exception as exc:  # noqa: BLE001 - one frame's output must not block the rest
                messages.extend(self._reject_built(entry, batch, exc))
        return messages

    def _reject_built(self, frame: PendingFrame, batch: FrameBatch, exc: Exception) -> list:
        # A frame the pool could not decode is a corrupt frame, as the sequential path says.
        reason = (str(exc) if isinstance(exc, PoisonFrame)
                  else f"processing error: {type(exc).__name__}: {exc}")
        batch.sends.append(self.dead_letter(frame.source, reason))
        skipped = self.skipped(frame.headers, reason)
        return [skipped] if skipped is not None else []

    def _undelivered(self, batch: FrameBatch, failures: list) -> None:
        """Not delivered: no commit; the loop re-reads the batch, with a fresh producer."""
        self.counters["delivery_failed"] += 1
        first = failures[0]
        log.error("batch of %d sends not delivered (%d failed, first: %s: %s); offsets not "
                  "committed, re-reading %s", len(batch.sends), len(failures),
                  type(first).__name__, str(first)[:200], _describe(batch.starts))
        if not self.stop.is_set():  # on the way out, a next run re-reads it anyway
            self._replace_producer()

    def _replace_producer(self) -> None:
        try:
            fresh = self.new_producer()
        except Exception as exc:  # noqa: BLE001 - broker still away: keep the old one, try later
            log.warning("no new producer yet (%s); keeping the old one", type(exc).__name__)
            return
        old, self.producer = self.producer, fresh
        close_quietly(old, timeout=0)

    def _count_delivered(self, messages: list[DetectionMessage]) -> None:
        for message in messages:
            if message.skipped:
                self.counters["skipped"] += 1
                continue
            self.counters["frames"] += 1
            self.counters["faces"] += len(message.faces)
            self.counters["excluded_faces"] += message.excluded_faces
            self.metrics.observe(message)

    def log_stats(self) -> None:
        stats = Counter(self.counters)
        stats.update(self.loop.counts)
        stats["deadletter"] = self.deadletters.total
        stats.update({f"deadletter:{kind}": n for kind, n in self.deadletters.counts.items()})
        log.info("stats %s", " ".join(f"{k}={v}" for k, v in sorted(stats.items())))

    def close(self) -> None:
        self.metrics.close()
        self.loop.close()
        close_quietly(self.producer)


def _describe(starts: dict) -> str:
    return ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(starts.items())) or "nothing"

