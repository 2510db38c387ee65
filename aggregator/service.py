"""The aggregator's consumer loop: poll -> parse -> one pipelined Redis round -> commit.

Offsets are committed only after Redis holds every update of the batch (at-least-once
delivery); the per-frame dedupe in Redis turns that into an exactly-once effect.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

from kafka.errors import CommitFailedError, KafkaError

from aggregator.alerts import AlertMonitor, AlertStore
from aggregator.store import Applied, SessionStore, check_detection
from moodstream.schemas import ControlEvent, DetectionMessage, MessageError
from moodstream.topics import Topics

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY_S = 0.25


@dataclass
class Counters:
    detections: int = 0
    duplicates: int = 0
    controls: int = 0
    malformed: int = 0
    sessions_closed: int = 0
    alerts_opened: int = 0
    commits: int = 0


@dataclass
class Batch:
    starts: list[ControlEvent] = field(default_factory=list)
    ends: list[ControlEvent] = field(default_factory=list)
    detections: list[DetectionMessage] = field(default_factory=list)


class Aggregator:
    """Applies Kafka records to Redis; knows nothing about how they were polled."""

    def __init__(self, store: SessionStore, topics: Topics, idle_timeout_s: float,
                 end_grace_s: float, monitor: AlertMonitor | None = None,
                 alert_store: AlertStore | None = None, deadletter=None):
        self.store, self.topics = store, topics
        self.idle_timeout_s, self.end_grace_s = idle_timeout_s, end_grace_s
        self.monitor, self.alert_store = monitor, alert_store
        self.deadletter = deadletter  # callable(record, reason) or None
        self.counters = Counters()
        self._last_housekeeping = 0.0
        # Idle/grace timers run only while we consume and keep up (see housekeeping).
        self.consuming_since: float | None = time.time()
        self.backlogged = False
        if monitor and alert_store:
            for record in alert_store.load_open():
                monitor.restore(record)

    # --- one batch ---
    def process(self, records: Iterable) -> None:
        batch = self.parse(records)
        for event in batch.starts:
            self.store.start_session(event)
        applied = self.store.apply_detections(batch.detections)
        self.counters.detections += sum(a.applied for a in applied)
        self.counters.duplicates += sum(not a.applied for a in applied)
        self._feed_alerts(applied)
        self._close_completed(applied)
        for event in batch.ends:
            status, frames, expected = self.store.end_session(event)
            log.info("session %s ending: %d/%s frames applied", event.session_id, frames,
                     "?" if expected is None else expected)
            if status != "closed" and expected is not None and frames >= expected:
                self._close(event.session_id, "complete")
        self.housekeeping()

    def parse(self, records: Iterable) -> Batch:
        batch = Batch()
        for record in records:
            try:
                if record.topic == self.topics.control:
                    event = ControlEvent.from_bytes(record.value)
                    self.counters.controls += 1
                    (batch.starts if event.type == "session_start" else batch.ends).append(event)
                else:
                    message = DetectionMessage.from_bytes(record.value)
                    batch.detections.append(check_detection(message))
            except MessageError as exc:
                self._skip(record, str(exc))
        return batch

    def _skip(self, record, reason: str) -> None:
        self.counters.malformed += 1
        log.warning("skipped malformed message %s[%s]@%s: %s", record.topic, record.partition,
                    record.offset, reason)
        if self.deadletter:
            self.deadletter(record, reason)

    def _feed_alerts(self, applied: list[Applied]) -> None:
        if not (self.monitor and self.alert_store):
            return
        for item in applied:
            if not item.applied:
                continue
            msg = item.message
            for event in self.monitor.observe(msg.camera_id, msg.session_id, msg.offset_s,
                                              len(msg.faces), item.sentiment_sum, msg.capture_ts):
                self.alert_store.write(event)
                self.counters.alerts_opened += event.kind == "opened"

    def _close_completed(self, applied: list[Applied]) -> None:
        done: dict[str, str] = {}
        for item in applied:
            session = item.message.session_id
            if item.status == "ending" and item.complete:
                done[session] = "complete"
            elif item.status == "closed" and item.applied:
                done.setdefault(session, "late")  # a frame after close: refresh the summary
        for session, why in done.items():
            if why == "late":
                self.store.write_summary(session)
            else:
                self._close(session, why)

    def _close(self, session_id: str, reason: str) -> None:
        camera_id = self.store.close_session(session_id, reason)
        if camera_id is None:
            return
        if self.monitor and self.alert_store:  # before the summary, so it shows the outcome
            for event in self.monitor.end_session(camera_id, session_id, time.time()):
                self.alert_store.write(event)
        self.store.write_summary(session_id)
        self.counters.sessions_closed += 1
        log.info("session %s closed (%s)", session_id, reason)

    def housekeeping(self, force: bool = False) -> None:
        """Close idle sessions and ending ones past their grace; prune the index.

        Not while partitions are unassigned or a full poll says we are behind: silence then
        means "not read yet", and closing early would export a partial report."""
        now = time.monotonic()
        if not force and now - self._last_housekeeping < HOUSEKEEPING_EVERY_S:
            return
        self._last_housekeeping = now
        if self.consuming_since is None or self.backlogged:
            return
        for session_id, reason in self.store.stale_sessions(
                self.idle_timeout_s, self.end_grace_s, self.consuming_since):
            self._close(session_id, reason)
        self.store.prune_index()


def run_consumer(aggregator: Aggregator, consumer, stop: threading.Event,
                 max_records: int, poll_timeout_ms: int) -> None:
    """Poll, apply, commit until `stop` is set. Redis errors propagate uncommitted."""
    aggregator.consuming_since = None  # until the group gives us partitions
    while not stop.is_set():
        polled = consumer.poll(timeout_ms=poll_timeout_ms, max_records=max_records)
        if aggregator.consuming_since is None and consumer.assignment():
            aggregator.consuming_since = time.time()
        records = [r for partition in polled.values() for r in partition]
        aggregator.backlogged = len(records) >= max_records
        if not records:
            aggregator.housekeeping()
            continue
        aggregator.process(records)
        try:
            consumer.commit()
            aggregator.counters.commits += 1
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions: they are redelivered, and deduped in Redis.
            log.warning("offset commit failed (%s); the batch will be redelivered", exc)
