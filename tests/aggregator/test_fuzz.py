"""Property-based fuzzing of the aggregator's processing path on a real Valkey.

Random bytes, deep nesting, huge numbers, NaN/inf, wrong types, missing fields and valid
messages go through Aggregator.process one record at a time. Whatever comes in: no
exception escapes; a record that is dead-lettered carries a reason, is counted and changed
no key; a valid message is never dead-lettered; every key written has a TTL.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.alerts import AlertMonitor, AlertStore
from aggregator.service import Aggregator
from aggregator.store import SessionStore
from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS
from moodstream.redis_keys import RedisKeys
from tests.aggregator.conftest import keys_without_ttl, snapshot
from tests.aggregator.test_alerts import RULE
from tests.aggregator.test_lifecycle import TOPICS, record

pytestmark = pytest.mark.integration  # ~5 s: quick enough for make test-fast

NOW = time.time()
IDS = st.sampled_from(["s1", "s2"])
CAMERAS = st.sampled_from(["cam1", "cam2"])
ADVERSARIAL = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 1e300, 1e17,
                     -1, -1e20, 1e20, 2 ** 70, True, False, None, "", "x" * 300, "../x",
                     [], {}, [1, 2, 3], {"v": 1}, "NaN", 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2 ** 80), max_value=2 ** 80),
    st.text(max_size=20))


@st.composite
def probabilities(draw) -> dict[str, float]:
    """A distribution like the int8 model's: each value a multiple of 1/256, sum ~1."""
    weights = [draw(st.integers(0, 255)) for _ in EMOTIONS]
    weights[draw(st.integers(0, 6))] += 1  # never all zero
    total = sum(weights)
    return {e: round(round(w / total * 256) / 256, 5) for e, w in zip(EMOTIONS, weights)}


@st.composite
def faces(draw) -> dict:
    x, y = draw(st.integers(-30, 630)), draw(st.integers(-30, 350))
    face = {"box": [x, y, draw(st.integers(40, 80)), draw(st.integers(40, 80))],
            "score": draw(st.floats(0, 1)), "track_id": draw(st.none() | st.integers(0, 50)),
            "probs": draw(probabilities())}
    if draw(st.booleans()):
        face["smoothed"] = draw(probabilities())
    return face


@st.composite
def valid_detections(draw) -> dict:
    offset = draw(st.floats(0, 600))
    message = {"v": 1, "camera_id": draw(CAMERAS), "session_id": draw(IDS),
               "run_id": draw(st.sampled_from(["0", "run-a", "run-b"])),
               "seq": draw(st.integers(0, 5000)), "capture_ts": NOW - 700 + offset,
               "offset_s": offset, "frame_w": 640, "frame_h": 360,
               "faces": draw(st.lists(faces(), max_size=3)),
               "excluded_faces": draw(st.integers(0, 3))}
    if draw(st.integers(0, 9)) == 0:
        message.update(faces=[], excluded_faces=0, skipped="corrupt frame")
    return message


@st.composite
def valid_controls(draw) -> dict:
    kind = draw(st.sampled_from(["session_start", "session_end"]))
    event = {"v": 1, "type": kind, "camera_id": draw(CAMERAS), "session_id": draw(IDS),
             "ts": NOW - draw(st.floats(0, 600)), "source": "clip.mp4"}
    if kind == "session_end":
        event.update(frames_published=draw(st.integers(0, 10_000)), reason="eof")
    return event


@st.composite
def broken(draw, valid) -> dict:
    """A valid message with one field replaced, dropped, or one face field replaced."""
    message = draw(valid)
    field = draw(st.sampled_from(sorted(message)))
    how = draw(st.sampled_from(["replace", "drop", "face"]))
    if how == "face" and message.get("faces"):
        face = message["faces"][0]
        face[draw(st.sampled_from(sorted(face)))] = draw(ADVERSARIAL)
    elif how == "drop":
        del message[field]
    else:
        message[field] = draw(ADVERSARIAL)
    return message


def encoded(strategy):
    # allow_nan: json.dumps writes NaN/Infinity as bare tokens, as a broken producer would.
    return strategy.map(lambda m: json.dumps(m, allow_nan=True).encode())


def nesting(depth: int) -> bytes:
    return b'{"v": 1, "faces": ' + b"[" * depth + b"]" * depth + b"}"


RAW = st.one_of(st.binary(max_size=300), st.integers(17, 60_000).map(nesting),
                st.sampled_from([b"", b"null", b"[]", b'{"v": 1}', b"1e999", b'"x"']))
DETECTION_RECORDS = st.one_of(encoded(valid_detections()), encoded(broken(valid_detections())),
                              RAW).map(lambda raw: (TOPICS.detections, raw))
CONTROL_RECORDS = st.one_of(encoded(valid_controls()), encoded(broken(valid_controls())),
                            RAW).map(lambda raw: (TOPICS.control, raw))


def dead_letters():
    out = []
    return out, lambda rec, reason: out.append((rec.value, reason))


@pytest.fixture
def fuzz_target(redis_conn, raw_conn):
    keys = RedisKeys(f"z{uuid.uuid4().hex[:10]}")
    store = SessionStore(redis_conn, keys, DEFAULT_VALENCE, bucket_ttl_s=3600,
                         summary_ttl_s=7200, ema_alpha=0.3)
    dead, send = dead_letters()
    agg = Aggregator(store, TOPICS, 3600.0, 3600.0, AlertMonitor(RULE),
                     AlertStore(redis_conn, keys, 3600), deadletter=send)
    # Timers and pruning are not message processing: kept out, so a change in Redis can
    # only come from the record under test.
    agg.housekeeping = lambda force=False: None
    yield agg, dead, keys
    for key in raw_conn.scan_iter(f"{keys.prefix}:*"):
        raw_conn.delete(key)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(item=st.one_of(DETECTION_RECORDS, CONTROL_RECORDS))
def test_any_record_is_applied_whole_or_dead_lettered_without_a_trace(fuzz_target, raw_conn,
                                                                     item):
    agg, dead, keys = fuzz_target
    topic, raw = item
    before, dead_before = snapshot(raw_conn, keys.prefix), len(dead)
    malformed_before = agg.counters.malformed

    agg.process([record(raw, topic=topic)])  # must not raise, whatever raw holds

    if len(dead) > dead_before:
        assert len(dead) == dead_before + 1 and dead[-1][0] == raw
        assert dead[-1][1].strip(), "a dead letter says why"
        assert agg.counters.malformed == malformed_before + 1
        assert snapshot(raw_conn, keys.prefix) == before, dead[-1][1]
    else:
        assert agg.counters.malformed == malformed_before
    assert keys_without_ttl(raw_conn, keys.prefix) == {}


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(message=st.one_of(valid_detections(), valid_controls()))
def test_valid_messages_are_never_dead_lettered(fuzz_target, message):
    agg, dead, _ = fuzz_target
    topic = TOPICS.control if "type" in message else TOPICS.detections
    agg.process([record(json.dumps(message).encode(), topic=topic)])
    assert dead == [], dead
