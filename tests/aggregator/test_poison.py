"""Poison messages on a real Valkey: each is dead-lettered with a reason, counted, and changes
nothing; the consumer never raises on one, so a redelivery cannot crash-loop it. Also: frame
identity with ingest runs, skipped frames, retention of every key written, bounded reports."""

from __future__ import annotations

import json
import math
import time

import pytest
from kafka.future import Future

from aggregator.alerts import AlertMonitor, AlertStore
from aggregator.service import Aggregator, DeadLetterFailed
from moodstream.emotions import EMOTIONS
from moodstream.reports import build_report
from moodstream.schemas import ControlEvent, DetectionMessage, Face
from tests.aggregator.conftest import (T0, control, detection, keys_without_ttl, probs,
                                       snapshot)
from tests.aggregator.test_alerts import RULE
from tests.aggregator.test_lifecycle import TOPICS, make_aggregator, record  # noqa: F401

pytestmark = pytest.mark.integration


def mutated(message, **changes) -> bytes:
    """The message's JSON with fields replaced (json.dumps writes NaN as the bare token)."""
    return json.dumps({**json.loads(message.to_bytes()), **changes}).encode()


def face_mutated(message, **changes) -> bytes:
    data = json.loads(message.to_bytes())
    data["faces"][0].update(changes)
    return json.dumps(data).encode()


class Dead(list):
    """A dead-letter callable that keeps (value, reason)."""

    def __call__(self, rec, reason: str) -> None:
        self.append((rec.value, reason))


def process_rejected(agg: Aggregator, raw_conn, keys, raws: list[bytes], topic=None) -> list[str]:
    """Process each raw record twice (a redelivery); assert it is dead-lettered each time and
    changes nothing in Redis; return the reasons."""
    dead, reasons = agg.deadletter, []
    for raw in raws:
        before, count = snapshot(raw_conn, keys.prefix), agg.counters.malformed
        for _ in range(2):
            agg.process([record(raw, topic=topic)])
        assert agg.counters.malformed == count + 2
        assert dead[-1][0] == raw and dead[-1][1] and dead[-2] == dead[-1]
        assert snapshot(raw_conn, keys.prefix) == before
        reasons.append(dead[-1][1])
    return reasons


@pytest.fixture
def agg(make_aggregator):  # noqa: F811 - the fixture imported above
    return make_aggregator(deadletter=Dead())


def test_nan_ts_control_event_is_dead_lettered_not_crash_looping(agg, raw_conn, redis_conn,
                                                                 keys):
    start = control("session_start")
    raws = [mutated(start, ts=math.nan), mutated(start, ts=math.inf),
            mutated(start, ts=1e20), mutated(start, ts=-1e20),
            mutated(control("session_end", frames=3), ts=math.nan)]
    reasons = process_rejected(agg, raw_conn, keys, raws, topic=TOPICS.control)
    assert "NaN" in reasons[0] and "Infinity" in reasons[1] and "ts" in reasons[2]
    agg.process([record(start), record(detection(0, ["happy"]))])  # the consumer goes on
    assert redis_conn.hget(keys.meta("s1"), "status") == "open"


def test_lifecycle_scripts_reject_what_slips_past_the_schema(make_store, raw_conn, keys):
    store = make_store(bucket_ttl_s=60)
    bad = ControlEvent.model_construct(type="session_start", camera_id="cam1", session_id="s1",
                                       ts=math.nan, source="", frames_published=None, reason="")
    with pytest.raises(Exception, match="ts out of range"):
        store.start_session(bad)
    end = bad.model_copy(update={"type": "session_end", "ts": 1e300})
    with pytest.raises(Exception, match="ts out of range"):
        store.end_session(end)
    assert snapshot(raw_conn, keys.prefix) == {}  # no meta without a TTL, no meta at all


def test_deeply_nested_json_is_dead_lettered(agg, raw_conn, keys):
    deep = b'{"v": 1, "faces": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # ~200 KB
    reasons = process_rejected(agg, raw_conn, keys, [deep, b"[" * 300_000])
    assert all("nested" in r or "not JSON" in r for r in reasons)
    reasons = process_rejected(agg, raw_conn, keys, [deep], topic=TOPICS.control)
    assert "nested" in reasons[0]


def test_offset_1e17_is_dead_lettered(agg, raw_conn, keys):
    reasons = process_rejected(agg, raw_conn, keys, [
        mutated(detection(0, ["sad"]), offset_s=1e17),
        mutated(detection(0, ["sad"]), offset_s=2e5 * 10),
        mutated(detection(0, ["sad"]), offset_s=-1)])
    assert all("offset_s" in r for r in reasons)


def test_capture_ts_1e300_cannot_freeze_the_camera_live_state(agg, raw_conn, redis_conn, keys):
    agg.process([record(detection(0, ["happy"]))])
    reasons = process_rejected(agg, raw_conn, keys, [
        mutated(detection(1, ["sad"]), capture_ts=1e300),
        mutated(detection(1, ["sad"]), capture_ts=time.time() + 30 * 86400)])
    assert all("capture_ts" in r for r in reasons)
    agg.process([record(detection(2, ["angry"]))])  # the camera still moves on
    assert float(redis_conn.hget(keys.camera_live("cam1"), "capture_ts")) == T0 + 0.2


def test_probabilities_above_one_and_1e308_are_dead_lettered_whole(agg, raw_conn, keys):
    msg = detection(0, ["happy", "sad"])
    reasons = process_rejected(agg, raw_conn, keys, [
        face_mutated(msg, probs={e: 1e308 for e in EMOTIONS}),
        face_mutated(msg, probs=dict(probs("happy"), happy=1.5)),
        face_mutated(msg, smoothed={e: 1e308 for e in EMOTIONS}),
        face_mutated(msg, probs={e: 0.5 for e in EMOTIONS})])
    assert all("probs" in r or "smoothed" in r for r in reasons)


def test_apply_script_rejects_without_writing_what_slips_past_the_schema(make_store, raw_conn,
                                                                        redis_conn, keys):
    store = make_store(bucket_ttl_s=60)
    store.apply_detections([detection(0, ["happy"])])
    before = snapshot(raw_conn, keys.prefix)
    huge = Face.model_construct(box=(1, 1, 5, 5), score=0.9, track_id=1, smoothed=None,
                                probs={e: 1e308 for e in EMOTIONS})
    good = detection(1, ["sad"])
    slipped = [good.model_copy(update={"faces": [huge, huge]}),  # sums overflow HINCRBYFLOAT
               good.model_copy(update={"capture_ts": 1e300}),
               good.model_copy(update={"offset_s": 1e17}),
               good.model_copy(update={"seq": 1 << 40}),
               good.model_copy(update={"capture_ts": math.nan})]
    applied = store.apply_detections(slipped)
    assert [bool(a.rejected) for a in applied] == [True] * len(slipped)
    assert not any(a.applied for a in applied)
    assert snapshot(raw_conn, keys.prefix) == before
    # The frame was not marked seen: its valid redelivery applies in full.
    assert store.apply_detections([good])[0].applied
    assert redis_conn.hget(keys.totals("s1"), "frames") == "2"


def test_two_ingest_runs_of_one_session_both_count_and_redelivery_does_not(agg, redis_conn,
                                                                           raw_conn, keys):
    first = [detection(i, ["happy"], run_id="run-a") for i in range(10)]
    second = [detection(i, ["sad"], run_id="run-b").model_copy(
        update={"capture_ts": T0 + 5 + i / 10, "offset_s": 5 + i / 10}) for i in range(10)]
    agg.process([record(m) for m in first + second])
    assert redis_conn.hget(keys.totals("s1"), "frames") == "20"  # seq 0-9 twice: both runs
    before = snapshot(raw_conn, keys.prefix)
    agg.process([record(m) for m in second[3:] + first[:4]])
    assert snapshot(raw_conn, keys.prefix) == before
    assert agg.counters.detections == 20 and agg.counters.duplicates == 11
    assert redis_conn.bitcount(keys.seen("s1", "run-a")) == 10
    assert redis_conn.strlen(keys.seen("s1", "run-b")) == 2  # bits, not members: 2 bytes
    assert build_report(redis_conn, keys, "s1")["frames_processed"] == 20


def test_a_skipped_frame_completes_the_session_without_faces(agg, redis_conn, keys):
    frames = [detection(i, ["happy"]) for i in range(5)]
    frames[2] = DetectionMessage(camera_id="cam1", session_id="s1", seq=2, capture_ts=T0 + 0.2,
                                 offset_s=0.2, skipped="corrupt frame")
    agg.process([record(control("session_end", frames=5))] + [record(m) for m in frames[:4]])
    assert redis_conn.hget(keys.meta("s1"), "status") == "ending"
    agg.process([record(frames[4]), record(frames[2])])  # redelivered skip: counted once
    assert redis_conn.hget(keys.meta("s1"), "status") == "closed"
    assert redis_conn.hget(keys.meta("s1"), "end_reason") == "eof"
    summary = json.loads(redis_conn.get(keys.summary("s1")))
    assert summary["skipped_frames"] == 1
    assert summary["frames_processed"] == 4 and summary["faces_detected"] == 4
    assert sum(row["frames"] for row in summary["timeline"]) == 4
    assert agg.counters.skipped_frames == 1


def test_end_event_after_a_skipped_last_frame_closes_at_once(agg, redis_conn, keys):
    skipped = DetectionMessage(camera_id="cam1", session_id="s1", seq=1, capture_ts=T0 + 0.1,
                               offset_s=0.1, skipped="oversized frame")
    agg.process([record(detection(0, [])), record(skipped),
                 record(control("session_end", frames=2))])
    assert redis_conn.hget(keys.meta("s1"), "status") == "closed"


def test_every_key_written_has_a_ttl(make_store, redis_conn, raw_conn, keys):
    store = make_store(bucket_ttl_s=3600, summary_ttl_s=7200)
    agg = Aggregator(store, TOPICS, 30.0, 5.0, AlertMonitor(RULE),
                     AlertStore(redis_conn, keys, 3600), deadletter=Dead())
    shift = time.time() - 600 - T0  # recent frames: cameras are not pruned as idle

    def recent(msg):
        return msg.model_copy(update={"capture_ts": msg.capture_ts + shift})

    skipped = DetectionMessage(camera_id="cam2", session_id="s2", seq=0, capture_ts=T0 + shift,
                               offset_s=0.0, skipped="corrupt frame")
    agg.process([record(control("session_start", source="clip.mp4", ts=T0 + shift))] +
                [record(recent(detection(i, ["angry", "sad"], tracks=[1, 2]))) for i in range(45)]
                + [record(recent(detection(i, ["happy"], session="s2", camera="cam2",
                                           run_id="r2"))) for i in range(1, 5)]
                + [record(skipped)])
    assert redis_conn.hexists(keys.open_alerts, "cam1")
    assert 0 < raw_conn.ttl(keys.open_alerts) <= 3600
    agg.process([record(control("session_end", frames=45, ts=T0 + shift + 5))])
    written = {key.decode() for key in raw_conn.scan_iter(f"{keys.prefix}:*")}
    expected = {*keys.session_keys("s1"), keys.summary("s1"), keys.seen("s1", "0"),
                keys.meta("s2"), keys.totals("s2"), keys.buckets("s2"), keys.seen("s2", "r2"),
                keys.seen("s2", "0"), keys.sessions, keys.active_sessions, keys.cameras,
                keys.camera_live("cam1"), keys.camera_live("cam2")}
    assert written == expected  # alerts:open emptied when the alert resolved at close
    assert keys_without_ttl(raw_conn, keys.prefix) == {}


def test_index_members_past_retention_are_pruned(make_store, redis_conn, keys):
    store = make_store(bucket_ttl_s=3600, summary_ttl_s=7200)
    store.apply_detections([detection(0, ["happy"]), detection(0, ["sad"], camera="cam2",
                                                                session="s2")])
    assert store.prune_index(now=T0 + 600) == 0
    assert store.prune_index(now=T0 + 3600 + 1) == 2  # both cameras idle past the bucket TTL
    assert redis_conn.zcard(keys.cameras) == 0 and redis_conn.zcard(keys.sessions) == 2
    assert store.prune_index(now=T0 + 7200 + 1) == 2  # sessions past the summary TTL
    assert redis_conn.exists(keys.cameras, keys.sessions) == 0


def test_stale_open_alerts_and_idle_camera_state_are_pruned(make_store, redis_conn, keys):
    clock = [0.0]
    monitor = AlertMonitor(RULE, clock=lambda: clock[0])
    alert_store = AlertStore(redis_conn, keys, 3600)
    agg = Aggregator(make_store(bucket_ttl_s=3600), TOPICS, 30.0, 5.0, monitor, alert_store)
    agg.process([record(detection(i, ["angry", "angry"])) for i in range(40)])
    agg.process([record(detection(i, ["angry", "angry"], camera="cam2", session="s2"))
                 for i in range(40)])
    assert redis_conn.hlen(keys.open_alerts) == 2 and set(monitor.cameras) == {"cam1", "cam2"}
    # s1 was closed behind this aggregator's back (another instance, a crash before the
    # alert was resolved): its open alert is stale.
    redis_conn.hset(keys.meta("s1"), "status", "closed")
    agg.housekeeping(force=True)
    assert list(redis_conn.hgetall(keys.open_alerts)) == ["cam2"]
    assert set(monitor.cameras) == {"cam2"}
    [s1_alert] = [json.loads(a) for a in redis_conn.lrange(keys.alerts("s1"), 0, -1)]
    assert s1_alert["status"] == "resolved" and s1_alert["resolved_because"] == "session_closed"
    # cam2 goes quiet longer than any session stays open: its state goes, its alert resolves.
    clock[0] += 2 * 30.0 + 5.0 + 1
    agg.housekeeping(force=True)
    assert monitor.cameras == {} and redis_conn.hlen(keys.open_alerts) == 0
    [s2_alert] = [json.loads(a) for a in redis_conn.lrange(keys.alerts("s2"), 0, -1)]
    assert s2_alert["resolved_because"] == "camera_idle"


def test_unreadable_open_alert_is_dropped_at_start(make_store, redis_conn, keys):
    redis_conn.hset(keys.open_alerts, mapping={"cam1": "{not json", "cam2": '["x"]'})
    monitor = AlertMonitor(RULE)
    Aggregator(make_store(), TOPICS, 30.0, 5.0, monitor, AlertStore(redis_conn, keys, 0))
    assert monitor.cameras == {} and redis_conn.hlen(keys.open_alerts) == 0


def test_report_size_follows_the_data_not_the_offset(make_store, redis_conn, keys):
    store = make_store()
    far = detection(0, ["happy"]).model_copy(update={"offset_s": 2e5, "capture_ts": T0 + 2e5})
    store.apply_detections([detection(1, ["sad"]), far])
    report = store.write_summary("s1")
    assert [row["t"] for row in report["timeline"]] == [0, 200_000]
    assert report["duration_s"] == 200_001
    assert len(redis_conn.get(keys.summary("s1"))) < 10_000  # was 37 MB


def test_an_undelivered_dead_letter_keeps_the_batch_uncommitted(make_store):
    futures = []

    def send(rec, reason):
        futures.append(Future().failure(RuntimeError("broker gone")))
        return futures[-1]

    agg = Aggregator(make_store(), TOPICS, 30.0, 5.0, deadletter=send)
    agg.process([record(b"{broken")])
    with pytest.raises(DeadLetterFailed, match="broker gone"):
        agg.confirm_deadletters(lambda timeout: None)
    assert agg.counters.deadletter_failed == 1
    agg.confirm_deadletters(lambda timeout: None)  # nothing pending any more

    delivered = Aggregator(make_store(), TOPICS, 30.0, 5.0,
                           deadletter=lambda rec, reason: Future().success(None))
    delivered.process([record(b"{broken")])
    delivered.confirm_deadletters(lambda timeout: None)
    assert delivered.counters.deadletter_failed == 0 and delivered.counters.malformed == 1


def test_a_summary_survives_timestamps_beyond_any_date(make_store, redis_conn, keys):
    # ts = +-1e20 once raised OverflowError in write_summary at every close attempt. The
    # schema keeps such values out; a report built from whatever Redis holds still writes.
    store = make_store()
    store.apply_detections([detection(0, ["happy"])])
    for bad in ("1e20", "-1e20", "nan"):
        redis_conn.hset(keys.meta("s1"), mapping={"started_at": bad, "ended_at": bad})
        report = store.write_summary("s1")
        assert report["started_at"] is None and report["ended_at"] is None
        assert report["frames_processed"] == 1
