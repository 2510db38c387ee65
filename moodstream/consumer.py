"""The one Kafka consumer loop, shared by the detector and the aggregator.

    poll -> process -> confirm delivery -> commit what was handed off
    (and the same for whatever is pending when partitions are revoked; close in `finally`)

Offsets are committed only after the work for their records has been handed on and the
hand-off confirmed (every produce future resolved, Redis written): at-least-once, never a
commit ahead of delivered output. A service plugs in as a `Step`; the loop owns the
plumbing around it: polling, the rebalance listener, commits, rewinds, backoff, the stop
event and closing the consumer. What a step does with its records stays in the service.

The hooks (see `Step`):

- `process(records)` yields a `Handoff` each time it has handed work on: the detector a
  full or due batch, the aggregator the whole poll once it is in Redis. `records` is lazy:
  when a hand-off of this poll fails, its partitions' records polled behind it are dropped
  from the rest of the iteration (the rewind reads them again);
- `confirm(handoff)` says whether everything the hand-off sent was acknowledged. True: the
  loop commits `handoff.offsets`. False: nothing is committed, the consumer is rewound to
  `handoff.starts` in each partition it still owns, and the loop waits (capped exponential
  backoff) before it polls again. Raising: nothing is committed and the loop stops, its
  consumer closed;
- `drain()` hands on whatever is pending; settled before partitions are revoked (so their
  next owner starts behind it) and when the loop stops;
- `on_idle()` runs after a poll that returned nothing (timers, a batch due by time);
- `on_assigned(partitions)`, `committed(handoff)` and `on_rewind(partitions)` tell the
  step what happened; after a rewind, work of those partitions that the step still holds
  (records it carries over behind the failed hand-off) must not be handed on: the rewind
  reads those records again.

A partition revoked needs no rewind: its next owner starts from the last commit.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

Partition = tuple[str, int]  # (topic, partition)


@dataclass
class Handoff:
    """Records whose work was handed on: `offsets` (per partition, the next offset to
    commit once confirmed), `starts` (the first offset, where a failed confirm rewinds to)
    and `work`, the step's own note of what it sent, for its confirm()."""

    offsets: dict[Partition, int] = field(default_factory=dict)
    starts: dict[Partition, int] = field(default_factory=dict)
    work: object = None

    @classmethod
    def covering(cls, records: Iterable, work: object = None) -> "Handoff":
        handoff = cls(work=work)
        for record in records:
            handoff.add(record.topic, record.partition, record.offset)
        return handoff

    def add(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        self.offsets[key] = max(self.offsets.get(key, 0), offset + 1)
        self.starts[key] = min(self.starts.get(key, offset), offset)


class Step:
    """What a service does with its records; every hook but process() may be left as is."""

    def poll_timeout_ms(self) -> int:
        return 500

    def process(self, records: Iterator) -> Iterable[Handoff]:
        raise NotImplementedError

    def confirm(self, handoff: Handoff) -> bool:
        return True

    def drain(self) -> Iterable[Handoff]:
        return ()

    def on_idle(self) -> Iterable[Handoff]:
        return ()

    def on_assigned(self, partitions: frozenset) -> None:
        pass

    def committed(self, handoff: Handoff) -> None:
        pass

    def on_rewind(self, partitions: frozenset) -> None:
        pass


class NotAcknowledged(Exception):
    """A send still without an answer when the flush gave up waiting."""


def unacknowledged(flush: Callable[[float], object] | None, futures: list,
                   timeout_s: float) -> list[BaseException]:
    """flush(timeout_s) (a producer's flush; None: nothing to flush), then the error of
    every future that did not succeed (empty = all acknowledged). A future still pending
    after the flush counts as failed."""
    if futures and flush is not None:
        try:
            flush(timeout_s)
        except Exception as exc:  # noqa: BLE001 - KafkaTimeoutError & co: the futures tell
            log.warning("producer flush gave up: %s: %s", type(exc).__name__, exc)
    return [(future.exception if future.failed() else NotAcknowledged("no answer from the broker"))
            for future in futures if not future.succeeded()]


class Backoff:
    """Capped exponential wait between retries of an unconfirmed hand-off; reset on success."""

    def __init__(self, first_s: float = 0.5, max_s: float = 5.0):
        self.first_s, self.max_s = first_s, max_s
        self.failures = 0

    def next_s(self) -> float:
        wait = min(self.max_s, self.first_s * 2 ** min(self.failures, 16))
        self.failures += 1
        return wait

    def reset(self) -> None:
        self.failures = 0


class _SettleOnRevoke(ConsumerRebalanceListener):
    def __init__(self, loop: "ConsumerLoop"):
        self.loop = loop

    def on_partitions_revoked(self, revoked):
        # Hand the pending work on before another member gets these partitions; no backoff
        # inside the rebalance: an unconfirmed hand-off is left uncommitted for the next owner.
        # kafka-python 3 may call this on its IO thread, where a blocking commit raises
        # ("Cannot block on net.run() from the IO thread"): the commit here is asynchronous.
        self.loop.settle(self.loop.step.drain(), backoff=False, blocking=False)
        self.loop.assigned = self.loop.assigned - frozenset(revoked)

    def on_partitions_assigned(self, assigned):
        # Eager rebalancing (kafka-python's default) names every partition held; the
        # cooperative kind only the added ones: the union is what is held either way.
        self.loop.held(self.loop.assigned | frozenset(assigned))
        log.info("partitions assigned: %s", _partition_list(self.loop.assigned))


class ConsumerLoop:
    """Runs one Step over one consumer until `stop` is set. Build it, pass `listener` to
    the consumer factory, attach() the consumer, then run()."""

    def __init__(self, step: Step, stop: threading.Event, max_records: int | None = None,
                 backoff: Backoff | None = None):
        self.step, self.stop, self.max_records = step, stop, max_records
        self.backoff = backoff or Backoff()
        self.listener = _SettleOnRevoke(self)
        self.consumer = None
        self.assigned: frozenset = frozenset()
        self.rewound: set[Partition] = set()  # partitions rewound since the last poll
        self.counts: Counter = Counter()

    def attach(self, consumer) -> None:
        """The consumer to run; partitions it already holds (assign="all": no rebalance will
        ever tell us) count as assigned."""
        self.consumer = consumer
        held = consumer.assignment()
        if held:
            self.held(held)

    def held(self, partitions) -> None:
        self.assigned = frozenset(partitions)
        self.step.on_assigned(self.assigned)

    def run(self) -> None:
        """Poll and process until stop is set; then settle what is pending and close the
        consumer, also when the step raised."""
        try:
            while not self.stop.is_set():
                self.poll_once()
        finally:
            try:
                self.settle(self.step.drain(), backoff=False)
            finally:
                self.close()

    def poll_once(self) -> None:
        limit = {"max_records": self.max_records} if self.max_records else {}
        polled = self.consumer.poll(timeout_ms=max(1, int(self.step.poll_timeout_ms())), **limit)
        self.take(polled)

    def take(self, polled: dict) -> None:
        """One poll's records, {partition: [records]}, through the step."""
        # A rewind made inside poll() (a revoke-time settle) is already behind us: the new
        # assignment starts from the committed offsets.
        self.rewound.clear()
        if not any(polled.values()):
            self.settle(self.step.on_idle())
            return
        self.counts["polls_with_records"] += 1
        records = (record for batch in polled.values() for record in batch
                   if (record.topic, record.partition) not in self.rewound)
        self.settle(self.step.process(records))

    def settle(self, handoffs: Iterable[Handoff], backoff: bool = True,
               blocking: bool = True) -> bool:
        """Confirm each hand-off, then commit it; an unconfirmed one is rewound instead (and
        waited after, with `backoff`). Returns whether every hand-off was confirmed."""
        confirmed = True
        for handoff in handoffs:
            if self.step.confirm(handoff):
                self.backoff.reset()
                if blocking:
                    self.commit(handoff)
                else:
                    self.commit_in_background(handoff)
                continue
            confirmed = False
            self.rewind(handoff.starts)
            self.step.on_rewind(frozenset(handoff.starts))
            if backoff:
                self.stop.wait(self.backoff.next_s())
        return confirmed

    def commit(self, handoff: Handoff) -> None:
        if not handoff.offsets:
            return
        payload = _commit_payload(handoff)
        try:
            self.consumer.commit(payload)
        except KafkaError as exc:  # CommitFailedError included
            # The group moved on (rebalance): the new owner re-reads these records; both
            # consumers turn a redelivery into a no-op (the aggregator dedupes per frame).
            self.counts["commit_failed"] += 1
            log.warning("offset commit failed (%s: %s); the records will be redelivered",
                        type(exc).__name__, str(exc)[:200])
            return
        self.counts["commits"] += 1
        self.step.committed(handoff)

    def commit_in_background(self, handoff: Handoff) -> None:
        """Send the commit without waiting for it (inside a rebalance). If it is lost, the
        next owner re-reads those records; both consumers make a redelivery a no-op."""
        if not handoff.offsets:
            return
        payload = _commit_payload(handoff)

        def failed(exc: Exception) -> None:
            self.counts["commit_failed"] += 1
            log.warning("offset commit during a rebalance failed (%s); the records will be "
                        "redelivered", type(exc).__name__)

        def done(_offsets, response) -> None:
            if isinstance(response, Exception):
                failed(response)

        try:
            self.consumer.commit_async(payload, callback=done)
        except KafkaError as exc:
            failed(exc)
            return
        self.counts["commits_in_rebalance"] += 1

    def rewind(self, starts: dict[Partition, int]) -> None:
        owned = self.consumer.assignment()
        for (topic, partition), offset in starts.items():
            tp = TopicPartition(topic, partition)
            if tp in owned:  # a revoked one restarts from its last commit at its next owner
                self.consumer.seek(tp, offset)
                self.rewound.add((topic, partition))
        self.counts["rewinds"] += 1

    def close(self) -> None:
        """Close the consumer without committing (idempotent: a service that fails before
        run() closes it the same way)."""
        close_quietly(self.consumer, autocommit=False)


def close_quietly(client, **kwargs) -> None:
    if client is None:
        return
    try:
        client.close(**kwargs)
    except Exception as exc:  # noqa: BLE001 - closing must not mask the real error
        log.warning("closing %s failed: %s", type(client).__name__, exc)


def _partition_list(partitions) -> str:
    """'0,2' for one topic's partitions (as logs and tests read them), else topic[p] each."""
    ordered = sorted(partitions)
    if len({tp.topic for tp in ordered}) > 1:
        return ",".join(f"{tp.topic}[{tp.partition}]" for tp in ordered)
    return ",".join(str(tp.partition) for tp in ordered) or "none"


def _commit_payload(handoff: Handoff) -> dict:
    """A hand-off's next offsets as kafka-python's commit takes them."""
    return {TopicPartition(t, p): OffsetAndMetadata(offset, "", -1)
            for (t, p), offset in handoff.offsets.items()}
