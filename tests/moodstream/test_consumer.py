"""The shared consumer loop (moodstream.consumer) with a fake consumer and a scripted step
(unit tests). The same loop on the real broker: tests/detector/test_service.py,
tests/detector/test_stale.py, tests/aggregator/test_main.py and tests/moodstream/test_chaos.py.
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaTimeoutError
from kafka.future import Future

from moodstream.consumer import (Backoff, ConsumerLoop, Handoff, NotAcknowledged, Step,
                                 unacknowledged)

T = "t.in"


def rec(offset: int, partition: int = 0):
    return SimpleNamespace(topic=T, partition=partition, offset=offset)


class FakeConsumer:
    """Answers poll() from a script (then sets stop); logs every call the loop makes."""

    def __init__(self, events: list, stop: threading.Event, polls=(), owned=((T, 0), (T, 1)),
                 fail_commit: bool = False):
        self.events, self.stop, self.polls = events, stop, list(polls)
        self.owned = {TopicPartition(*tp) for tp in owned}
        self.fail_commit, self.closed = fail_commit, False
        self.poll_args: list[dict] = []

    def assignment(self):
        return set(self.owned)

    def poll(self, **kwargs):
        self.poll_args.append(kwargs)
        if not self.polls:
            self.stop.set()
            return {}
        records = self.polls.pop(0)
        polled: dict = {}
        for r in records:
            polled.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return polled

    def commit(self, offsets):
        self.events.append(("commit", {(tp.topic, tp.partition): o.offset
                                       for tp, o in offsets.items()}))
        if self.fail_commit:
            raise CommitFailedError("the group rebalanced")

    def commit_async(self, offsets, callback=None):
        self.events.append(("commit_async", {(tp.topic, tp.partition): o.offset
                                             for tp, o in offsets.items()}))
        if callback is not None:
            callback(offsets, CommitFailedError("the group rebalanced") if self.fail_commit else None)

    def seek(self, tp, offset):
        self.events.append(("seek", (tp.topic, tp.partition), offset))

    def close(self, autocommit=True):
        self.events.append(("close", autocommit))
        self.closed = True


class ScriptedStep(Step):
    """Hands off every `per` records (and the rest when drained); confirms unless the
    hand-off's first offset is in `refuse`; logs what it sees."""

    def __init__(self, events: list, per: int = 2, refuse=(), raise_in_process=None,
                 raise_in_confirm=None):
        self.events, self.per, self.refuse = events, per, set(refuse)
        self.raise_in_process, self.raise_in_confirm = raise_in_process, raise_in_confirm
        self.pending: list = []
        self.assigned_seen: list = []

    def poll_timeout_ms(self) -> int:
        return 123

    def process(self, records):
        for record in records:
            self.events.append(("process", record.partition, record.offset))
            if self.raise_in_process is not None:
                raise self.raise_in_process
            self.pending.append(record)
            if len(self.pending) >= self.per:
                yield self._hand_off()

    def _hand_off(self) -> Handoff:
        done, self.pending = self.pending, []
        self.events.append(("hand off", [r.offset for r in done]))
        return Handoff.covering(done, work=[r.offset for r in done])

    def drain(self):
        return [self._hand_off()] if self.pending else []

    def on_idle(self):
        self.events.append(("idle",))
        return []

    def confirm(self, handoff: Handoff) -> bool:
        self.events.append(("confirm", handoff.work))
        if self.raise_in_confirm is not None:
            raise self.raise_in_confirm
        return handoff.work[0] not in self.refuse

    def on_assigned(self, partitions):
        self.assigned_seen.append(sorted((tp.topic, tp.partition) for tp in partitions))

    def committed(self, handoff: Handoff) -> None:
        self.events.append(("committed", handoff.work))


def loop_for(step: ScriptedStep, events: list, polls=(), **consumer_kw) -> ConsumerLoop:
    stop = threading.Event()
    loop = ConsumerLoop(step, stop, max_records=50, backoff=Backoff(0.0, 0.0))
    loop.attach(FakeConsumer(events, stop, polls, **consumer_kw))
    return loop


def test_each_hand_off_is_confirmed_before_its_commit_and_committed_after():
    events: list = []
    step = ScriptedStep(events)
    loop = loop_for(step, events, polls=[[rec(5), rec(6), rec(3, 1)], [rec(4, 1)]])
    loop.run()
    assert events == [
        ("process", 0, 5), ("process", 0, 6), ("hand off", [5, 6]),
        ("confirm", [5, 6]), ("commit", {(T, 0): 7}), ("committed", [5, 6]),
        ("process", 1, 3), ("process", 1, 4), ("hand off", [3, 4]),
        ("confirm", [3, 4]), ("commit", {(T, 1): 5}), ("committed", [3, 4]),
        ("idle",), ("close", False)]
    assert loop.counts["commits"] == 2 and loop.counts["polls_with_records"] == 2
    # the step's timeout and the loop's record limit reach every poll
    assert loop.consumer.poll_args[0] == {"timeout_ms": 123, "max_records": 50}


def test_a_failed_confirm_commits_nothing_and_rewinds_what_it_covered():
    events: list = []
    step = ScriptedStep(events, refuse={5})
    loop = loop_for(step, events, owned=[(T, 0)])
    loop.take({TopicPartition(T, 0): [rec(5), rec(6), rec(7)],
               TopicPartition(T, 1): [rec(2, 1), rec(3, 1)]})
    commits = [e for e in events if e[0] == "commit"]
    assert ("seek", (T, 0), 5) in events and loop.rewound == {(T, 0)}
    # offset 7 was polled behind the failed hand-off: left to the rewind, not processed;
    # partition 1 carries on and is committed on its own
    assert ("process", 0, 7) not in events
    assert commits == [("commit", {(T, 1): 4})]
    assert loop.counts["rewinds"] == 1


def test_a_rewind_skips_partitions_no_longer_owned():
    events: list = []
    loop = loop_for(ScriptedStep(events), events, owned=[(T, 1)])
    loop.rewind({(T, 0): 5, (T, 1): 3})
    assert [e for e in events if e[0] == "seek"] == [("seek", (T, 1), 3)]
    assert loop.rewound == {(T, 1)}


def test_a_failed_confirm_backs_off_on_the_stop_event_and_success_resets_it():
    events: list = []
    step = ScriptedStep(events, per=1, refuse={1})
    stop = threading.Event()
    waits: list = []
    stop.wait = lambda timeout=None: waits.append(timeout)  # the loop's only sleep
    loop = ConsumerLoop(step, stop, backoff=Backoff(0.5, 5.0))
    loop.attach(FakeConsumer(events, stop))
    loop.take({TopicPartition(T, 0): [rec(1)]})
    loop.take({TopicPartition(T, 0): [rec(1)]})
    assert waits == [0.5, 1.0]
    loop.take({TopicPartition(T, 0): [rec(2)]})
    assert loop.backoff.failures == 0
    assert loop.settle(step.drain()) is True  # nothing pending: delivered


def test_a_confirm_that_raises_commits_nothing_and_the_consumer_is_still_closed():
    events: list = []
    step = ScriptedStep(events, raise_in_confirm=KafkaTimeoutError("dead letters lost"))
    loop = loop_for(step, events, polls=[[rec(1), rec(2)]])
    with pytest.raises(KafkaTimeoutError):
        loop.run()
    assert not [e for e in events if e[0] == "commit"]
    assert events[-1] == ("close", False) and loop.consumer.closed


def test_the_consumer_is_closed_in_finally_when_process_raises():
    events: list = []
    step = ScriptedStep(events, per=3)
    loop = loop_for(step, events, polls=[[rec(1), rec(2)], [rec(3)]])
    step_process = step.process

    def failing(records):  # the second poll blows up (e.g. Redis went away)
        if step.pending:
            step.raise_in_process = RuntimeError("redis down")
        return step_process(records)
    step.process = failing
    with pytest.raises(RuntimeError, match="redis down"):
        loop.run()
    assert loop.consumer.closed and events[-1] == ("close", False)
    # what was pending was still handed on and confirmed before the commit, on the way out
    assert events[-5:-1] == [("hand off", [1, 2]), ("confirm", [1, 2]),
                             ("commit", {(T, 0): 3}), ("committed", [1, 2])]


def test_revoke_hands_on_the_pending_work_and_commits_it_without_backoff():
    """kafka-python 3 calls the listener on its IO thread, where a blocking commit raises
    ("Cannot block on net.run() from the IO thread itself"): revoke commits asynchronously."""
    events: list = []
    step = ScriptedStep(events, per=10, refuse={7})
    loop = loop_for(step, events)
    loop.listener.on_partitions_assigned({TopicPartition(T, 0), TopicPartition(T, 1)})
    loop.take({TopicPartition(T, 0): [rec(1), rec(2)]})
    assert not [e for e in events if e[0] == "commit"]  # still batching

    def blocking_commit_on_the_io_thread(offsets):
        raise RuntimeError("Cannot block on net.run() from the IO thread itself.")
    loop.consumer.commit = blocking_commit_on_the_io_thread
    loop.listener.on_partitions_revoked({TopicPartition(T, 0)})
    assert events[-2:] == [("confirm", [1, 2]), ("commit_async", {(T, 0): 3})]
    assert loop.counts["commits_in_rebalance"] == 1 and not loop.counts["commit_failed"]
    assert loop.assigned == {TopicPartition(T, 1)}
    # an undeliverable batch at revoke: left uncommitted for the next owner, no waiting
    loop.take({TopicPartition(T, 1): [rec(7, 1)]})
    loop.listener.on_partitions_revoked({TopicPartition(T, 1)})
    assert events[-2:] == [("confirm", [7]), ("seek", (T, 1), 7)]
    assert loop.backoff.failures == 0 and not loop.assigned  # no backoff was drawn


def test_a_commit_lost_in_the_rebalance_is_counted_not_fatal(caplog):
    events: list = []
    loop = loop_for(ScriptedStep(events, per=10), events, fail_commit=True)
    loop.listener.on_partitions_assigned({TopicPartition(T, 0)})
    loop.take({TopicPartition(T, 0): [rec(1)]})
    loop.listener.on_partitions_revoked({TopicPartition(T, 0)})
    assert events[-1] == ("commit_async", {(T, 0): 2})
    assert loop.counts["commit_failed"] == 1 and "will be redelivered" in caplog.text


def test_assignment_reaches_the_step_and_is_logged_by_the_listener_only(caplog):
    events: list = []
    caplog.set_level(logging.INFO, "moodstream.consumer")
    step = ScriptedStep(events)
    loop_for(step, events, owned=[(T, 2)])  # assign="all": held at attach, no rebalance
    assert step.assigned_seen == [[(T, 2)]] and "partitions assigned:" not in caplog.text
    group = loop_for(ScriptedStep(events), events, owned=[])
    group.listener.on_partitions_assigned({TopicPartition(T, 0), TopicPartition(T, 2)})
    assert "partitions assigned: 0,2" in caplog.text
    assert group.assigned == {TopicPartition(T, 0), TopicPartition(T, 2)}


def test_a_failed_commit_is_counted_not_fatal():
    events: list = []
    loop = loop_for(ScriptedStep(events), events, polls=[[rec(1), rec(2)]], fail_commit=True)
    loop.run()
    assert loop.counts["commit_failed"] == 1 and loop.counts["commits"] == 0
    assert not [e for e in events if e[0] == "committed"]


def test_stop_ends_the_loop_before_the_next_poll():
    events: list = []
    loop = loop_for(ScriptedStep(events), events, polls=[[rec(1)]])
    loop.stop.set()
    loop.run()
    assert loop.consumer.poll_args == [] and events == [("close", False)]


def test_handoff_covers_first_and_next_offsets_per_partition():
    handoff = Handoff.covering([rec(7), rec(5), rec(2, 1)])
    assert handoff.offsets == {(T, 0): 8, (T, 1): 3}
    assert handoff.starts == {(T, 0): 5, (T, 1): 2}


def test_unacknowledged_names_each_failure():
    ok, bad, pending = Future().success(None), Future().failure(KafkaTimeoutError("x")), Future()
    flushed = []
    failures = unacknowledged(flushed.append, [ok, bad, pending], 1.0)
    assert flushed == [1.0]
    assert isinstance(failures[0], KafkaTimeoutError) and isinstance(failures[1], NotAcknowledged)
    assert unacknowledged(None, [ok], 1.0) == []

    def gives_up(timeout):
        raise KafkaTimeoutError("Timeout waiting for future")
    assert [type(f) for f in unacknowledged(gives_up, [pending], 1.0)] == [NotAcknowledged]


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(0.5, 5.0)
    assert [backoff.next_s() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_s() == 0.5


class RewindNotedStep(ScriptedStep):
    def on_rewind(self, partitions) -> None:
        self.events.append(("on_rewind", sorted(partitions)))


def test_a_failed_confirm_tells_the_step_which_partitions_to_forget():
    """A step that carries records over behind a hand-off (the detector's frames still in
    its pool) learns which partitions were rewound, so it does not hand those on too."""
    events: list = []
    loop = loop_for(RewindNotedStep(events, refuse={5}), events, owned=[(T, 0)])
    loop.take({TopicPartition(T, 0): [rec(5), rec(6)]})
    assert events[-2:] == [("seek", (T, 0), 5), ("on_rewind", [(T, 0)])]
    assert not [e for e in events if e[0] == "commit"]
