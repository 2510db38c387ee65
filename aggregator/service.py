"""The aggregator: poll -> parse -> one pipelined Redis round -> commit, on the shared
consumer loop (moodstream.consumer; AggregatorStep is its step).

Offsets are committed only after Redis holds every update of the batch and the batch's
dead letters are acknowledged (at-least-once delivery); the per-frame dedupe in Redis turns
that into an exactly-once effect. Kafka records are untrusted: one that fails parsing
(moodstream.schemas bounds) or that a Lua script rejects is dead-lettered with the reason
and counted, and changes nothing; only Redis failures and undelivered dead letters stop
the loop (uncommitted, so the batch comes again).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from kafka.errors import KafkaError

from aggregator.alerts import AlertEvent, AlertMonitor, AlertStore
from aggregator.store import Applied, SessionStore
from moodstream.consumer import ConsumerLoop, Handoff, Step, unacknowledged
from moodstream.schemas import SKIPPED_STALE, ControlEvent, DetectionMessage, MessageError
from moodstream.topics import Topics

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY_S = 0.25
DEADLETTER_FLUSH_S = 10.0  # longest a batch's dead letters may take to be acknowledged
PRUNE_EVERY_S = 30.0  # stale open alerts, alert state of cameras gone quiet


class DeadLetterFailed(KafkaError):
    """A dead letter was not delivered: the batch stays uncommitted and comes again."""


@dataclass
class Counters:
    detections: int = 0
    duplicates: int = 0
    controls: int = 0
    skipped_frames: int = 0  # frames the detector dead-lettered or skipped: handled, no faces
    stale_frames: int = 0  # of those, live frames the detector read too late ("stale")
    malformed: int = 0  # dead-lettered here: failed parsing or rejected by a script
    deadletter_failed: int = 0  # the dead-letter send itself failed (logged)
    sessions_closed: int = 0
    alerts_opened: int = 0
    commits: int = 0


@dataclass
class Batch:
    """Parsed messages of one poll, each with its Kafka record (to dead-letter it)."""

    starts: list[tuple[object, ControlEvent]] = field(default_factory=list)
    ends: list[tuple[object, ControlEvent]] = field(default_factory=list)
    detections: list[tuple[object, DetectionMessage]] = field(default_factory=list)


class Aggregator:
    """Applies Kafka records to Redis; knows nothing about how they were polled."""

    def __init__(self, store: SessionStore, topics: Topics, idle_timeout_s: float,
                 end_grace_s: float, monitor: AlertMonitor | None = None,
                 alert_store: AlertStore | None = None, deadletter=None, rollups=None):
        self.store, self.topics = store, topics
        self.idle_timeout_s, self.end_grace_s = idle_timeout_s, end_grace_s
        self.monitor, self.alert_store = monitor, alert_store
        # callable(record, reason) or None; when it returns a Future (DeadLetterSender.send)
        # the delivery is confirmed before the batch's offsets are committed.
        self.deadletter = deadletter
        self._deadletters: list = []
        self.counters = Counters()
        self._last_housekeeping = self._last_prune = 0.0
        self.rollups = rollups  # aggregator.rollups.HourlyRollups: recomputed in housekeeping
        # Idle/grace timers run only while we consume and keep up (see housekeeping).
        self.consuming_since: float | None = time.time()
        self.backlogged = False
        if monitor and alert_store:
            for record in alert_store.load_open():
                monitor.restore(record)

    # --- one batch ---
    def process(self, records: Iterable) -> None:
        batch = self.parse(records)
        for record, event in batch.starts:
            self._control(record, lambda: self.store.start_session(event))
        applied = self._apply(batch.detections)
        self._feed_alerts(applied)
        self._close_completed(applied)
        for record, event in batch.ends:
            self._control(record, lambda: self._end(event))
        self.housekeeping()

    def parse(self, records: Iterable) -> Batch:
        batch = Batch()
        for record in records:
            try:
                if record.topic == self.topics.control:
                    event = ControlEvent.from_bytes(record.value)
                    self.counters.controls += 1
                    (batch.starts if event.type == "session_start" else batch.ends).append(
                        (record, event))
                else:
                    batch.detections.append((record, DetectionMessage.from_bytes(record.value)))
            except MessageError as exc:
                self._skip(record, str(exc))
        return batch

    def _apply(self, detections: list[tuple[object, DetectionMessage]]) -> list[Applied]:
        """Apply the batch's detections; those a script rejected are dead-lettered."""
        applied = self.store.apply_detections(message for _, message in detections)
        for (record, _), item in zip(detections, applied):
            if item.rejected:
                self._skip(record, f"rejected by Redis script: {item.rejected}")
        kept = [item for item in applied if not item.rejected]
        self.counters.detections += sum(a.applied for a in kept)
        self.counters.duplicates += sum(not a.applied for a in kept)
        self.counters.skipped_frames += sum(a.applied and bool(a.message.skipped) for a in kept)
        self.counters.stale_frames += sum(a.applied and a.message.skipped == SKIPPED_STALE
                                          for a in kept)
        return kept

    def _control(self, record, action: Callable[[], object]) -> None:
        try:
            action()
        except MessageError as exc:  # a lifecycle script rejected the event
            self._skip(record, str(exc))

    def _end(self, event: ControlEvent) -> None:
        status, handled, expected = self.store.end_session(event)
        log.info("session %s ending: %d/%s frames handled", event.session_id, handled,
                 "?" if expected is None else expected)
        if status != "closed" and expected is not None and handled >= expected:
            self._close(event.session_id, "complete")

    def _skip(self, record, reason: str) -> None:
        self.counters.malformed += 1
        log.warning("skipped malformed message %s[%s]@%s: %s", record.topic, record.partition,
                    record.offset, reason)
        if self.deadletter is None:
            return
        try:
            sent = self.deadletter(record, reason)
        except KafkaError as exc:  # a sender that raises: logged, counted, never fatal
            self.counters.deadletter_failed += 1
            log.error("dead-letter of %s[%s]@%s failed: %s", record.topic, record.partition,
                      record.offset, exc)
            return
        if hasattr(sent, "failed"):
            self._deadletters.append(sent)

    def confirm_deadletters(self, flush: Callable[[float], object] | None) -> None:
        """Before a commit: every dead letter of the batch acknowledged, else DeadLetterFailed
        (uncommitted, the bad records come again after a restart and are sent again)."""
        pending, self._deadletters = self._deadletters, []
        failed = unacknowledged(flush, pending, DEADLETTER_FLUSH_S)
        if failed:
            self.counters.deadletter_failed += len(failed)
            raise DeadLetterFailed(f"{len(failed)} dead letter(s) not delivered: "
                                   f"{failed[0]!r}"[:300])

    # --- alerts and closing ---
    def _feed_alerts(self, applied: list[Applied]) -> None:
        if not (self.monitor and self.alert_store):
            return
        for item in applied:
            if not item.applied or item.message.skipped:
                continue
            msg = item.message
            for event in self.monitor.observe(
                    msg.camera_id, msg.session_id, msg.offset_s, len(msg.faces),
                    item.sentiment_sum, msg.capture_ts, [f.track_id for f in msg.faces],
                    self.alert_store.min_people(msg.session_id)):  # moodstream.suppression
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
            self._write_alerts(self.monitor.end_session(camera_id, session_id, time.time()))
        self.store.write_summary(session_id)
        self.counters.sessions_closed += 1
        log.info("session %s closed (%s)", session_id, reason)

    def _write_alerts(self, events: Iterable[AlertEvent]) -> None:
        for event in events:
            self.alert_store.write(event)

    # --- timers and retention ---
    def housekeeping(self, force: bool = False) -> None:
        """Close idle sessions and ending ones past their grace; prune indexes and alerts.

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
        if self.rollups is not None:
            self.rollups.maybe_run()
        self.store.prune_index()
        if force or now - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = now
            self._prune_alerts()

    def _prune_alerts(self) -> None:
        """Bounded alert state: open alerts of closed or vanished sessions leave alerts:open
        (resolved in their session's list), and the monitor forgets cameras gone quiet (a
        session closes after idle_timeout_s, so twice that marks a leftover)."""
        if not (self.monitor and self.alert_store):
            return
        now = time.time()
        for record in self.alert_store.prune_stale():
            self.monitor.forget(record["camera_id"], record["session_id"])
            self._write_alerts([AlertEvent("resolved", dict(
                record, status="resolved", resolved_at=now,
                resolved_offset_s=record.get("opened_offset_s"),
                resolved_because="session_closed"))])
        idle_s = 2 * self.idle_timeout_s + self.end_grace_s
        self._write_alerts(self.monitor.forget_idle(idle_s, now))


class AggregatorStep(Step):
    """The Aggregator on the shared consumer loop: each poll is one hand-off, applied to
    Redis by process(); confirm() waits for its dead letters (raising DeadLetterFailed
    when one failed); housekeeping runs on idle polls too."""

    def __init__(self, aggregator: Aggregator, max_records: int, poll_timeout_ms: int,
                 flush: Callable[[float], object] | None = None):
        self.aggregator, self.max_records, self.flush = aggregator, max_records, flush
        self._poll_timeout_ms = poll_timeout_ms
        # Built right before the consumer: start-up times count from here.
        self._started, self._first_applied = time.monotonic(), False
        aggregator.consuming_since = None  # until the group gives us partitions

    def poll_timeout_ms(self) -> int:
        return self._poll_timeout_ms

    def on_assigned(self, partitions: frozenset) -> None:
        if self.aggregator.consuming_since is None and partitions:
            self.aggregator.consuming_since = time.time()
            log.info("partitions assigned %.2f s after connecting to Kafka",
                     time.monotonic() - self._started)

    def process(self, records) -> Iterator[Handoff]:
        records = list(records)
        self.aggregator.backlogged = len(records) >= self.max_records
        self.aggregator.process(records)
        if not self._first_applied and self.aggregator.counters.detections:
            self._first_applied = True
            log.info("first detections applied in Redis %.2f s after connecting to Kafka",
                     time.monotonic() - self._started)
        yield Handoff.covering(records)

    def confirm(self, handoff: Handoff) -> bool:
        self.aggregator.confirm_deadletters(self.flush)
        return True

    def on_idle(self) -> tuple:
        self.aggregator.backlogged = False
        self.aggregator.housekeeping()
        return ()

    def committed(self, handoff: Handoff) -> None:
        self.aggregator.counters.commits += 1


def consumer_loop(aggregator: Aggregator, stop: threading.Event, max_records: int,
                  poll_timeout_ms: int, flush: Callable[[float], object] | None = None
                  ) -> ConsumerLoop:
    """Poll, apply, commit until `stop` is set, once a consumer is attached (built with the
    loop's listener). Redis errors and undelivered dead letters propagate uncommitted.
    `flush` flushes the dead-letter producer."""
    step = AggregatorStep(aggregator, max_records, poll_timeout_ms, flush)
    return ConsumerLoop(step, stop, max_records=max_records)
