"""Session lifecycle through Aggregator.process on a real Redis (records built in-process)."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest

from aggregator.service import Aggregator
from moodstream.reports import build_report
from moodstream.topics import Topics
from tests.aggregator.conftest import T0, control, detection

pytestmark = pytest.mark.integration

TOPICS = Topics("t")


def record(message, offset: int = 0, topic: str | None = None):
    topic = topic or (TOPICS.control if hasattr(message, "type") else TOPICS.detections)
    raw = message if isinstance(message, bytes) else message.to_bytes()
    return SimpleNamespace(topic=topic, partition=0, offset=offset, key=b"cam1", value=raw)


@pytest.fixture
def make_aggregator(make_store):
    def make(idle_timeout_s: float = 30.0, end_grace_s: float = 5.0, **kw) -> Aggregator:
        return Aggregator(make_store(), TOPICS, idle_timeout_s, end_grace_s, **kw)
    return make


def status(redis_conn, keys, session: str = "s1") -> str | None:
    return redis_conn.hget(keys.meta(session), "status")


def test_end_event_before_the_last_detections_closes_on_the_last_frame(make_aggregator,
                                                                       redis_conn, keys):
    agg = make_aggregator()
    frames = [detection(i, ["happy"] if i % 2 else []) for i in range(20)]
    agg.process([record(control("session_start", source="clip.mp4"))] +
                [record(m) for m in frames[:12]])
    agg.process([record(control("session_end", frames=20))])  # overtakes 8 detections
    assert status(redis_conn, keys) == "ending"
    assert redis_conn.get(keys.summary("s1")) is None

    agg.process([record(m) for m in frames[12:19]])
    assert status(redis_conn, keys) == "ending"
    agg.process([record(frames[19])])
    assert status(redis_conn, keys) == "closed"

    meta = redis_conn.hgetall(keys.meta("s1"))
    assert meta["end_reason"] == "eof" and meta["expected_frames"] == "20"
    assert meta["source"] == "clip.mp4"
    summary = json.loads(redis_conn.get(keys.summary("s1")))
    assert summary == build_report(redis_conn, keys, "s1")
    assert summary["status"] == "closed" and summary["frames_processed"] == 20
    assert summary["faces_detected"] == 10
    assert redis_conn.zscore(keys.active_sessions, "s1") is None
    assert redis_conn.hget(keys.camera_live("cam1"), "status") == "closed"


def test_end_event_after_all_detections_closes_at_once(make_aggregator, redis_conn, keys):
    agg = make_aggregator()
    agg.process([record(detection(i, ["sad"])) for i in range(5)] +
                [record(control("session_end", frames=5))])
    assert status(redis_conn, keys) == "closed"
    assert agg.counters.sessions_closed == 1
    agg.process([record(control("session_end", frames=5))])  # redelivered: no second close
    assert agg.counters.sessions_closed == 1


def test_empty_session_closes_on_its_end_event(make_aggregator, redis_conn, keys):
    agg = make_aggregator()
    agg.process([record(control("session_start")), record(control("session_end", frames=0))])
    report = json.loads(redis_conn.get(keys.summary("s1")))
    assert report["frames_processed"] == 0 and report["timeline"] == []


def test_idle_timeout_closes_a_session(make_aggregator, redis_conn, keys):
    agg = make_aggregator(idle_timeout_s=0.3)
    agg.process([record(detection(i, ["neutral"])) for i in range(3)])
    agg.housekeeping(force=True)
    assert status(redis_conn, keys) == "open"
    time.sleep(0.4)
    agg.housekeeping(force=True)
    assert status(redis_conn, keys) == "closed"
    assert redis_conn.hget(keys.meta("s1"), "end_reason") == "idle"
    assert json.loads(redis_conn.get(keys.summary("s1")))["frames_processed"] == 3

    # The camera kept sending after all: the session reopens and counts on.
    agg.process([record(detection(3, ["neutral"]))])
    assert status(redis_conn, keys) == "open"
    assert redis_conn.hget(keys.totals("s1"), "frames") == "4"


def test_missing_frames_close_after_the_end_grace(make_aggregator, redis_conn, keys):
    agg = make_aggregator(end_grace_s=0.3)
    agg.process([record(detection(i, [])) for i in range(4)] +
                [record(control("session_end", frames=5))])
    agg.housekeeping(force=True)
    assert status(redis_conn, keys) == "ending"
    time.sleep(0.4)
    agg.housekeeping(force=True)
    assert status(redis_conn, keys) == "closed"


def test_a_late_frame_after_close_refreshes_the_summary(make_aggregator, redis_conn, keys):
    agg = make_aggregator(end_grace_s=0.01)
    agg.process([record(detection(i, ["happy"])) for i in range(3)] +
                [record(control("session_end", frames=4))])
    time.sleep(0.05)
    agg.housekeeping(force=True)
    assert json.loads(redis_conn.get(keys.summary("s1")))["frames_processed"] == 3
    agg.process([record(detection(3, ["happy"]))])
    assert status(redis_conn, keys) == "closed"
    assert json.loads(redis_conn.get(keys.summary("s1")))["frames_processed"] == 4


def test_malformed_messages_are_counted_dead_lettered_and_skipped(make_aggregator, redis_conn,
                                                                  keys):
    dead = []
    agg = make_aggregator(deadletter=lambda rec, reason: dead.append((rec.value, reason)))
    bad_id = detection(0, []).to_bytes().replace(b'"s1"', b'"../x"')
    nan = detection(2, ["sad"]).to_bytes().replace(b'"sad":0.7', b'"sad":NaN')
    negative = detection(3, []).to_bytes().replace(b'"seq":3', b'"seq":-3')
    agg.process([record(b"not json"), record(b'{"v": 9}'), record(bad_id), record(nan),
                 record(negative), record(b'{"v": 1, "type": "nope"}', topic=TOPICS.control),
                 record(detection(1, ["happy"]))])
    assert agg.counters.malformed == 6
    assert any("NaN" in reason for _, reason in dead)
    assert [value for value, _ in dead][:2] == [b"not json", b'{"v": 9}']
    assert "unsupported schema version" in dead[1][1]
    assert redis_conn.hget(keys.totals("s1"), "frames") == "1"


def test_a_new_session_takes_over_the_camera_live_state(make_aggregator, redis_conn, keys):
    agg = make_aggregator()
    agg.process([record(detection(i, ["angry"])) for i in range(10)])
    new_start = control("session_start", session="s2", ts=T0 + 5)
    agg.process([record(new_start), record(detection(0, ["happy"], session="s2").model_copy(
        update={"capture_ts": T0 + 5.0}))])
    agg.process([record(detection(10, ["angry"]))])  # a straggler of s1, older than s2's start
    live = redis_conn.hgetall(keys.camera_live("cam1"))
    assert live["session_id"] == "s2" and live["dominant"] == "happy"
    assert float(live["sentiment"]) > 0  # the EMA restarted with s2, no carry-over from s1


def test_timers_wait_while_the_aggregator_was_not_consuming(make_aggregator, redis_conn, keys):
    agg = make_aggregator(idle_timeout_s=0.2, end_grace_s=0.2)
    agg.process([record(detection(i, [])) for i in range(3)] +
                [record(control("session_end", frames=10))])
    time.sleep(0.3)  # "down" for longer than both timeouts, e.g. killed and restarting
    restarted = make_aggregator(idle_timeout_s=0.2, end_grace_s=0.2)
    restarted.consuming_since = None  # the group has not assigned partitions yet
    restarted.housekeeping(force=True)
    assert status(redis_conn, keys) == "ending"
    restarted.consuming_since = time.time()  # partitions assigned: the timer starts now
    restarted.housekeeping(force=True)
    assert status(redis_conn, keys) == "ending"
    restarted.backlogged = True  # a full poll: still catching up
    time.sleep(0.3)
    restarted.housekeeping(force=True)
    assert status(redis_conn, keys) == "ending"
    restarted.backlogged = False
    restarted.housekeeping(force=True)
    assert status(redis_conn, keys) == "closed"


def test_on_the_consumer_loop_each_poll_is_committed_after_redis_and_idle_polls_close(
        make_aggregator, redis_conn, keys):
    """The aggregator's step on the shared loop (moodstream.consumer), with a fake consumer:
    timers start at the assignment, a full poll is 'behind', a commit comes only once Redis
    holds the poll, and an empty poll runs the idle timer."""
    from kafka import TopicPartition

    from aggregator.service import consumer_loop

    stop, at_commit, tp = threading.Event(), [], TopicPartition(TOPICS.detections, 0)

    class Consumer:
        polls = [[record(detection(i, ["happy"]), offset=i) for i in range(3)], [], []]

        def assignment(self):
            return set()  # a group member: partitions come with the rebalance

        def poll(self, timeout_ms, max_records):
            if not self.polls:
                stop.set()
                return {}
            if not self.polls[0]:
                time.sleep(0.3)  # quiet for longer than idle_timeout_s
            return {tp: self.polls.pop(0)}

        def commit(self, offsets):
            at_commit.append(({(t.topic, t.partition): o.offset for t, o in offsets.items()},
                              redis_conn.hget(keys.totals("s1"), "frames"), agg.backlogged))

        def close(self, autocommit=True):
            pass

    agg = make_aggregator(idle_timeout_s=0.2, end_grace_s=0.2)
    loop = consumer_loop(agg, stop, max_records=3, poll_timeout_ms=10)
    loop.attach(Consumer())
    assert agg.consuming_since is None  # not assigned yet: timers wait
    loop.listener.on_partitions_assigned({tp})
    assert agg.consuming_since is not None
    loop.run()
    # one commit, of the poll's next offset, with its 3 frames already in Redis (a full
    # poll: backlogged); the idle polls closed the session and committed nothing
    assert at_commit == [({(TOPICS.detections, 0): 3}, "3", True)]
    assert agg.counters.commits == 1 and not agg.backlogged
    assert status(redis_conn, keys) == "closed"
