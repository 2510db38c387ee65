"""SessionStore on a real Redis: exactly-once effect, totals, buckets, live state, reports."""

from __future__ import annotations

import math
import random
import time

import pytest
from redis.crc import key_slot

from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS, sentiment
from moodstream.redis_keys import parse_buckets
from moodstream.reports import build_report
from moodstream.schemas import DetectionMessage
from tests.aggregator.conftest import T0, detection, probs

pytestmark = pytest.mark.integration

MOODS = ["happy", "sad", "angry", "neutral", "surprise", "fear", "disgust"]


def stream(n: int = 40, session: str = "s1", camera: str = "cam1") -> list[DetectionMessage]:
    """A varied clip: 0-3 faces per frame, two tracks, some frames without faces."""
    rng = random.Random(7)
    out = []
    for seq in range(n):
        emotions = [rng.choice(MOODS) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
        out.append(detection(seq, emotions, camera=camera, session=session,
                             tracks=[i % 2 for i in range(len(emotions))], excluded_faces=seq % 3))
    return out


def snapshot(r, keys, session: str) -> dict:
    return {"totals": r.hgetall(keys.totals(session)), "buckets": r.hgetall(keys.buckets(session)),
            "tracks": r.smembers(keys.tracks(session)),
            "bucket_tracks": r.hgetall(keys.bucket_tracks(session)),
            "seen": r.bitcount(keys.seen(session, "0"))}


def expected_report_numbers(messages: list[DetectionMessage], valence=DEFAULT_VALENCE) -> dict:
    """What the report must say, computed straight from the messages in plain Python."""
    faces = [f for m in messages for f in m.faces]
    totals = {e: sum((f.smoothed or f.probs)[e] for f in faces) for e in EMOTIONS}
    timeline: dict[int, dict] = {}
    for m in messages:
        b = timeline.setdefault(math.floor(m.offset_s), {"frames": 0, "faces": 0, "s": 0.0,
                                                          "tracks": set()})
        b["frames"] += 1
        b["faces"] += len(m.faces)
        b["s"] += sum(sentiment(f.smoothed or f.probs, valence) for f in m.faces)
        b["tracks"] |= {f.track_id for f in m.faces if f.track_id is not None}
    return {"frames": len(messages), "faces": len(faces),
            "frames_with_faces": sum(1 for m in messages if m.faces),
            "excluded": sum(m.excluded_faces for m in messages),
            "emotion_totals": totals,
            "mean_sentiment": sum(sentiment(f.smoothed or f.probs, valence) for f in faces)
            / len(faces),
            "timeline": timeline}


def test_duplicate_deliveries_leave_totals_unchanged(make_store, redis_conn, keys):
    store, messages = make_store(), stream()
    first = store.apply_detections(messages)
    assert all(a.applied for a in first)
    before = snapshot(redis_conn, keys, "s1")

    replay = messages[5:30] + messages[:10]
    random.Random(1).shuffle(replay)
    again = store.apply_detections(replay + replay)  # duplicates inside one batch as well
    assert not any(a.applied for a in again)
    assert snapshot(redis_conn, keys, "s1") == before
    assert before["seen"] == len(messages)
    assert again[-1].handled == len(messages)


def test_report_numbers_match_what_the_aggregator_wrote(make_store, redis_conn, keys):
    valence = dict(DEFAULT_VALENCE, surprise=-0.5, neutral=0.1)
    store, messages = make_store(valence=valence), stream(57)
    store.apply_detections(messages)
    report = build_report(redis_conn, keys, "s1", valence)
    want = expected_report_numbers(messages, valence)

    assert report["frames_processed"] == want["frames"]
    assert report["faces_detected"] == want["faces"]
    assert report["frames_with_faces"] == want["frames_with_faces"]
    assert report["excluded_faces"] == want["excluded"]
    assert report["people"] == 2
    assert report["mean_sentiment"] == pytest.approx(want["mean_sentiment"], abs=1e-4)
    for e in EMOTIONS:
        assert report["emotion_totals"][e] == pytest.approx(want["emotion_totals"][e], abs=1e-4)
    assert report["dominant_emotion"] == max(want["emotion_totals"], key=want["emotion_totals"].get)
    # A reader that does not know the configured weights still reports the ones used.
    assert build_report(redis_conn, keys, "s1")["valence_weights"] == valence
    assert [row["t"] for row in report["timeline"]] == list(range(6))  # 57 frames at 10 fps
    for row in report["timeline"]:
        b = want["timeline"][row["t"]]
        assert (row["frames"], row["faces"], row["people"]) == (b["frames"], b["faces"],
                                                                 len(b["tracks"]))
        assert row["sentiment"] == pytest.approx(b["s"] / b["faces"], abs=1e-4)
        assert sum(row["emotions"].values()) == pytest.approx(1.0, abs=1e-3)


def test_smoothed_probabilities_win_over_raw(make_store, redis_conn, keys):
    msg = detection(0, ["angry"])
    face = msg.faces[0].model_copy(update={"smoothed": probs("happy", 1.0)})
    make_store().apply_detections([msg.model_copy(update={"faces": [face]})])
    totals = redis_conn.hgetall(keys.totals("s1"))
    assert float(totals["p:happy"]) == pytest.approx(1.0)
    assert float(totals["sentiment_sum"]) == pytest.approx(1.0)


def test_buckets_use_floor_of_offset_and_count_distinct_tracks(make_store, redis_conn, keys):
    store = make_store()
    # Track 5 in three frames of second 0, track 6 once; track 5 again in second 2.
    store.apply_detections([detection(0, ["sad"], tracks=[5]), detection(3, ["sad", "happy"],
                            tracks=[5, 6]), detection(9, ["sad"], tracks=[5]),
                            detection(25, ["happy"], tracks=[5])])
    buckets = parse_buckets(redis_conn.hgetall(keys.buckets("s1")))
    assert sorted(buckets) == [0, 2]
    assert buckets[0]["frames"] == 3 and buckets[0]["faces"] == 4
    assert redis_conn.hgetall(keys.bucket_tracks("s1")) == {"0": "2", "2": "1"}
    assert redis_conn.smembers(keys.tracks("s1")) == {"5", "6"}


def test_session_meta_index_and_camera_live_state(make_store, redis_conn, keys):
    store = make_store(ema_alpha=0.5)
    store.apply_detections([detection(10, ["happy"]), detection(11, ["sad"])])
    meta = redis_conn.hgetall(keys.meta("s1"))
    assert meta["camera_id"] == "cam1" and meta["status"] == "open"
    assert float(meta["started_at"]) == pytest.approx(T0)  # capture_ts - offset_s
    assert float(meta["last_seen"]) == pytest.approx(T0 + 1.1)
    assert redis_conn.zscore(keys.sessions, "s1") == pytest.approx(T0)
    assert redis_conn.zscore(keys.cameras, "cam1") == pytest.approx(T0 + 1.1)

    live = redis_conn.hgetall(keys.camera_live("cam1"))
    happy, sad = (sentiment(probs(e)) for e in ("happy", "sad"))
    assert float(live["sentiment"]) == pytest.approx(0.5 * sad + 0.5 * happy)
    assert float(live["capture_ts"]) == pytest.approx(T0 + 1.1)
    assert float(live["applied_at"]) >= float(live["capture_ts"])
    assert live["session_id"] == "s1" and live["faces"] == "1"

    store.apply_detections([detection(2, ["angry", "angry"])])  # an old frame, replayed late
    assert redis_conn.hgetall(keys.camera_live("cam1")) == live


def test_retention_ttl_expires_buckets_and_the_summary_outlives_them(make_store, redis_conn,
                                                                     keys):
    store = make_store(bucket_ttl_s=1, summary_ttl_s=60)
    store.apply_detections(stream(20))
    assert store.close_session("s1", "test") == "cam1"
    store.write_summary("s1")
    for key in keys.session_keys("s1"):
        assert redis_conn.ttl(key) in (-2, 1)  # absent keys (no alerts) or expiring
    assert 0 < redis_conn.ttl(keys.summary("s1")) <= 60
    report = build_report(redis_conn, keys, "s1")

    time.sleep(1.2)
    assert not any(redis_conn.exists(k) for k in keys.session_keys("s1"))
    assert build_report(redis_conn, keys, "s1") == report  # served from the summary now


def test_each_script_call_touches_one_cluster_slot(make_store, keys):
    """Redis Cluster runs a script only on keys of one slot: the apply script's keys are
    all the session's, under its {sess:S} hash tag."""
    store = make_store()
    call_keys, _, _ = store.detection_call(detection(3, ["happy"], session="visit-9"), T0 + 1)
    assert {key_slot(k.encode()) for k in call_keys} == {key_slot(b"sess:visit-9")}
    assert all("{sess:visit-9}" in k for k in [*keys.session_keys("visit-9"),
                                                 keys.summary("visit-9")])
    assert "{cam:cam1}" in keys.camera_live("cam1")


def test_indexes_lost_between_the_two_rounds_are_healed_by_redelivery(make_store, redis_conn,
                                                                      keys):
    """The index writes follow the apply scripts in a second round trip; an aggregator that
    died between the two leaves its batch uncommitted, and the redelivered (now duplicate)
    frames write the indexes again without counting or moving the live state twice."""
    store, messages = make_store(ema_alpha=0.5), stream(12)
    store.apply_detections(messages)
    totals = redis_conn.hgetall(keys.totals("s1"))
    live = redis_conn.hgetall(keys.camera_live("cam1"))
    updated_at = redis_conn.zscore(keys.active_sessions, "s1")
    redis_conn.delete(keys.sessions, keys.active_sessions, keys.cameras)  # a lost second round
    assert not any(a.applied for a in store.apply_detections(messages))
    assert redis_conn.zscore(keys.sessions, "s1") == pytest.approx(T0)
    assert redis_conn.zscore(keys.active_sessions, "s1") == updated_at  # the idle timer
    assert redis_conn.zscore(keys.cameras, "cam1") == pytest.approx(messages[-1].capture_ts)
    assert redis_conn.hgetall(keys.totals("s1")) == totals
    assert redis_conn.hgetall(keys.camera_live("cam1")) == live


def test_a_redis_that_lost_its_scripts_gets_them_again_without_double_counting(
        make_store, redis_conn, keys):
    """A restarted Redis (or SCRIPT FLUSH) answers NOSCRIPT: only those calls run again."""
    store, messages = make_store(), stream(16)
    store.apply_detections(messages[:8])
    redis_conn.script_flush()
    assert [a.applied for a in store.apply_detections(messages)] == [False] * 8 + [True] * 8
    assert build_report(redis_conn, keys, "s1")["frames_processed"] == 16
    assert redis_conn.hget(keys.camera_live("cam1"), "capture_ts") == \
        repr(messages[-1].capture_ts)
