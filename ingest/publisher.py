"""Kafka publishing of frames and control events, surviving a broker outage.

kafka-python keeps unsent records in memory and retries them until `delivery_timeout_ms`,
reconnecting by itself when the broker returns. Its buffer is unbounded, so the bound is
kept here: at most `max_pending` frames may be unacknowledged. Past that a live frame is
dropped and counted; a file frame waits (the file's drop policy). Records that expire in
the producer's buffer count as dropped too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from ingest.sampling import DropPolicy
from moodstream.schemas import ControlEvent, FrameHeaders
from moodstream.topics import Topics

log = logging.getLogger(__name__)

# A file frame whose delivery failed is sent again up to this often (a broker restarting
# empty refuses records until its topics are back); then it counts as dropped.
MAX_DELIVERY_ATTEMPTS = 10


class PublishStats:
    """Delivery outcome hooks; the metrics layer implements them per camera."""

    def published(self, camera_id: str, latency_s: float) -> None: ...

    def dropped(self, camera_id: str, reason: str, count: int = 1) -> None: ...


@dataclass(frozen=True)
class _Frame:
    headers: FrameHeaders
    jpeg: bytes
    policy: DropPolicy
    attempts: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return self.headers.camera_id, self.headers.session_id


class Publisher:
    def __init__(self, producer: KafkaProducer, topics: Topics, max_pending: int,
                 stats: PublishStats, stop: threading.Event,
                 restore_topics: Callable[[], None] | None = None):
        self.producer, self.topics = producer, topics
        self.max_pending, self.stats, self.stop = max_pending, stats, stop
        self._restore_topics = restore_topics
        self._restorer: threading.Thread | None = None
        self._lock = threading.Condition()
        self._pending = 0
        self._acked: Counter[tuple[str, str]] = Counter()  # (camera, session) -> frames acked
        self._settled: Counter[tuple[str, str]] = Counter()  # acked or failed for good
        self._failed: list[_Frame] = []  # WAIT frames to send again
        self._outage_logged = False

    def publish_frame(self, headers: FrameHeaders, jpeg: bytes, policy: DropPolicy) -> bool:
        """Hand one frame to the producer; False when it was dropped (already counted)."""
        self._resend_failed()
        return self._send(_Frame(headers, jpeg, policy), resend=False)

    def _send(self, frame: _Frame, resend: bool) -> bool:
        """Returns whether the producer took the frame; a resent frame that is dropped
        settles its session's count, a new one never entered it."""
        headers = frame.headers
        if not self._reserve(frame.policy):
            self._drop(frame, "broker_buffer_full", settles=resend)
            return False
        while True:
            sent_at = time.monotonic()
            try:
                future = self.producer.send(self.topics.frames, key=headers.camera_id.encode(),
                                            value=frame.jpeg, headers=headers.to_kafka())
                break
            except KafkaError as exc:  # no topic metadata within max_block_ms: broker down
                outage = isinstance(exc, KafkaTimeoutError)
                if outage:
                    self._note_outage(exc)
                if outage and frame.policy is DropPolicy.WAIT and not self.stop.is_set():
                    continue  # a file frame waits for the broker (send blocked max_block_ms)
                self._release()
                self._drop(frame, "broker_unavailable" if outage else "rejected", settles=resend)
                if not outage:
                    log.warning("camera %s: frame rejected: %s", headers.camera_id, exc)
                return False
        future.add_callback(lambda _meta: self._on_ack(frame.key, sent_at))
        future.add_errback(lambda exc: self._on_error(frame, exc))
        return True

    def _resend_failed(self) -> None:
        """Send again the WAIT frames whose delivery failed (e.g. a broker that came back
        empty refuses them until the topics exist again). Runs on the caller's thread:
        sending from the producer's own callback thread could deadlock it."""
        with self._lock:
            if not self._failed:
                return
            frames, self._failed = self._failed, []
        self.stop.wait(0.2)  # the broker just refused them: give it a moment
        for frame in frames:
            self._send(frame, resend=True)

    def publish_control(self, event: ControlEvent, timeout_s: float = 10.0) -> bool:
        """Control events must not be lost: retry until acknowledged, stop, or timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                future = self.producer.send(self.topics.control, key=event.camera_id.encode(),
                                            value=event.to_bytes())
                future.get(timeout=max(1.0, deadline - time.monotonic()))
                return True
            except KafkaError as exc:
                self._note_outage(exc)
                if time.monotonic() >= deadline:
                    log.error("camera %s: %s for session %s not delivered: %s", event.camera_id,
                              event.type, event.session_id, type(exc).__name__)
                    return False
                time.sleep(0.5)  # also during shutdown, when `stop` is already set

    def settle(self, camera_id: str, session_id: str, submitted: int, timeout_s: float) -> int:
        """Wait until every submitted frame of a session is acked or failed; returns acked."""
        key, deadline = (camera_id, session_id), time.monotonic() + timeout_s
        while True:
            self._resend_failed()
            if self.pending:
                self.flush(max(0.1, deadline - time.monotonic()))
            with self._lock:
                # Callbacks run on the producer's thread, just after flush() returns.
                self._lock.wait_for(lambda: self._settled[key] >= submitted or self._failed,
                                    timeout=max(0.0, min(0.5, deadline - time.monotonic())))
                if self._settled[key] >= submitted or time.monotonic() >= deadline:
                    return self._acked[key]

    def flush(self, timeout_s: float) -> None:
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("producer flush incomplete after %.0fs: %s", timeout_s, type(exc).__name__)

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def _reserve(self, policy: DropPolicy) -> bool:
        with self._lock:
            while self._pending >= self.max_pending:
                # Nothing acknowledged for a whole buffer: the broker is likely down.
                self._start_restorer()
                if policy is DropPolicy.DROP_OLDEST or self.stop.is_set():
                    return False
                self._lock.wait(0.2)
            self._pending += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1
            self._lock.notify_all()

    def _on_ack(self, key: tuple[str, str], sent_at: float) -> None:
        with self._lock:
            self._acked[key] += 1
            self._settled[key] += 1
            self._pending -= 1
            self._lock.notify_all()
        if self._outage_logged:
            self._outage_logged = False
            log.info("broker reachable again; publishing resumed")
        self.stats.published(key[0], time.monotonic() - sent_at)

    def _on_error(self, frame: _Frame, exc: Exception) -> None:
        log.debug("camera %s: frame not delivered: %r", frame.headers.camera_id, exc)
        self._note_outage(exc)
        retry = (frame.policy is DropPolicy.WAIT and not self.stop.is_set()
                 and frame.attempts < MAX_DELIVERY_ATTEMPTS)
        with self._lock:
            self._pending -= 1
            if retry:
                self._failed.append(replace(frame, attempts=frame.attempts + 1))
            self._lock.notify_all()
        if not retry:
            self._drop(frame, "delivery_failed", settles=True)

    def _drop(self, frame: _Frame, reason: str, settles: bool) -> None:
        if settles:
            with self._lock:
                self._settled[frame.key] += 1
                self._lock.notify_all()
        self.stats.dropped(frame.headers.camera_id, reason)

    def _note_outage(self, exc: Exception) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            log.warning("broker unavailable (%s); buffering frames and retrying", type(exc).__name__)
        with self._lock:
            self._start_restorer()

    def _start_restorer(self) -> None:
        """Called with the lock held, when the broker looks gone (errors or a full buffer)."""
        if self._restore_topics and not (self._restorer and self._restorer.is_alive()):
            self._restorer = threading.Thread(target=self._restore_until_done,
                                              name="topic-restorer", daemon=True)
            self._restorer.start()

    def _restore_until_done(self) -> None:
        """A broker that comes back empty (no persistence) gets our topics again, with the
        right partition counts, before the producer's buffered records go out."""
        while not self.stop.wait(0.5):
            try:
                self._restore_topics()
                return
            except Exception as exc:  # noqa: BLE001 - broker still down: try again
                log.debug("topics not restored yet: %s", exc)


def make_producer(settings, factory: Callable[..., KafkaProducer]) -> KafkaProducer:
    """Producer tuned to ride out outages: bounded blocking, long delivery timeout.

    Idempotence is off: an idempotent producer cannot resume after a broker that lost its
    producer-id state (a restarted broker without persistence) and fails every later send.
    A retried frame may then arrive twice; consumers dedupe by (camera, session, seq).
    """
    # No auto-creation: a restarted empty broker would make 1-partition topics; the
    # Publisher re-creates them properly instead.
    # Frames are 20-300 KB: with the 16 KB default batch every frame is its own request
    # (~15x slower on Tansu); 1 MiB batches carry several frames per request.
    return factory(settings, linger_ms=5, batch_size=1 << 20, max_block_ms=2000,
                   enable_idempotence=False, allow_auto_create_topics=False,
                   delivery_timeout_ms=int(settings.delivery_timeout_s * 1000),
                   reconnect_backoff_ms=200, reconnect_backoff_max_ms=2000,
                   retry_backoff_ms=200)
