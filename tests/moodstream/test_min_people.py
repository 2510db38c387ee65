"""min_people: sentiment of fewer distinct people is hidden in reports and on the
dashboard, with real Redis (Valkey) and the aggregator's real store and scripts."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from aggregator.store import SessionStore
from dashboard.data import DashboardData
from dashboard.kpis import camera_cards
from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS
from moodstream.redis_keys import RedisKeys
from moodstream.reports import build_report, render, report_csv
from moodstream.schemas import ControlEvent, DetectionMessage, Face
from moodstream.suppression import apply_min_people

HAPPY = {e: (0.94 if e == "happy" else 0.01) for e in EMOTIONS}


def test_seconds_and_sessions_with_too_few_people_lose_their_sentiment():
    timeline = [{"t": 0, "frames": 5, "faces": 5, "people": 1, "sentiment": 0.9,
                 "emotions": dict(HAPPY)},
                {"t": 1, "frames": 5, "faces": 10, "people": 2, "sentiment": 0.5,
                 "emotions": dict(HAPPY)},
                {"t": 2, "frames": 5, "faces": 0, "people": 0, "sentiment": None,
                 "emotions": {e: 0.0 for e in EMOTIONS}}]
    report = {"people": 2, "faces_detected": 15, "mean_sentiment": 0.6,
              "dominant_emotion": "happy", "emotion_totals": dict(HAPPY), "timeline": timeline}
    assert apply_min_people(report, 1) is report  # 1 = off
    out = apply_min_people(report, 2)
    first, second, empty = out["timeline"]
    assert (first["sentiment"], first["suppressed"]) == (None, "suppressed (fewer than 2 people)")
    assert set(first["emotions"].values()) == {None} and first["faces"] == 5
    assert second == timeline[1] and empty == timeline[2]
    assert (out["mean_sentiment"], out["min_people"]) == (0.6, 2)  # the session saw 2
    whole = apply_min_people(report, 3)
    assert (whole["mean_sentiment"], whole["dominant_emotion"], whole["suppressed"]) == (
        None, None, "suppressed (fewer than 3 people)")
    assert whole["people"] == 2 and whole["faces_detected"] == 15  # counts stay


def test_every_report_format_says_the_sentiment_is_suppressed():
    report = {"session_id": "s1", "camera_id": "desk", "source": "x", "status": "closed",
              "started_at": None, "ended_at": None, "duration_s": 1, "frames_processed": 5,
              "skipped_frames": 0, "frames_with_faces": 5, "faces_detected": 5, "people": 1,
              "excluded_faces": 0, "emotion_totals": dict(HAPPY), "dominant_emotion": "happy",
              "mean_sentiment": 0.9, "valence_weights": dict(DEFAULT_VALENCE), "alerts": [],
              "timeline": [{"t": 0, "frames": 5, "faces": 5, "people": 1, "sentiment": 0.9,
                            "emotions": dict(HAPPY)}]}
    hidden = apply_min_people(report, 3)
    assert hidden["emotion_totals"] == {} and hidden["suppressed"] == "suppressed (fewer than 3 people)"
    assert "<td>suppressed (fewer than 3 people)</td>" in render(hidden, "html")
    assert "0.9" not in report_csv(hidden).splitlines()[1]
    pdf = render(hidden, "pdf")
    assert pdf[:5] == b"%PDF-" and len(pdf) > 1000


@pytest.fixture
def store_and_keys(redis_server):
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=14,
                         decode_responses=True)
    keys = RedisKeys(f"mp{uuid.uuid4().hex[:8]}")
    yield client, keys
    client.close()


def detection(seq: int, offset_s: float, tracks: list[int], now: float) -> DetectionMessage:
    faces = [Face(box=(10 + 60 * i, 10, 50, 50), score=0.9, track_id=t, probs=HAPPY)
             for i, t in enumerate(tracks)]
    return DetectionMessage(camera_id="till", session_id="till-s1", seq=seq,
                            capture_ts=now - 3 + offset_s, offset_s=offset_s, frame_w=640,
                            frame_h=360, faces=faces, run_id="r1")


def test_a_camera_asking_more_than_the_aggregator_gets_its_seconds_hidden(store_and_keys):
    client, keys = store_and_keys
    store = SessionStore(client, keys, DEFAULT_VALENCE, 3600, 3600, 0.5, min_people=2)
    now = time.time()
    store.start_session(ControlEvent(type="session_start", camera_id="till", session_id="till-s1",
                                     ts=now - 3, purpose="checkout queue", notice=True,
                                     min_people=3))
    # second 0: one person; second 1: three people; second 2: one person, in view now
    store.apply_detections([detection(0, 0.2, [7], now), detection(1, 1.2, [7, 8, 9], now),
                            detection(2, 2.2, [7], now)])
    live = client.hgetall(keys.camera_live("till"))
    assert (live["min_people"], live["purpose"], live["notice"]) == ("3", "checkout queue", "1")

    report = build_report(client, keys, "till-s1")
    lonely, crowd, now_lonely = report["timeline"]
    assert lonely["sentiment"] is None and lonely["suppressed"] == "suppressed (fewer than 3 people)"
    assert crowd["sentiment"] == pytest.approx(0.94 + 0.01 * (0.3 - 0.6 - 0.8 - 1 - 1), abs=1e-3)
    assert now_lonely["sentiment"] is None and report["mean_sentiment"] is not None  # 3 in all
    rows = report_csv(report).splitlines()[1:]
    assert rows[0].split(",")[6] == "" and rows[1].split(",")[6] != ""

    data = DashboardData(client, keys, clock=lambda: now)
    [camera] = data.cameras()
    assert camera.suppressed and camera.sentiment is None and camera.dominant is None
    points = data.series([camera], 60)["till"]
    assert [(round(y, 3) if y is not None else None, faces) for _x, y, faces in points][-3:] == [
        (None, 1), (round(crowd["sentiment"], 3), 3), (None, 1)]
    [card] = camera_cards([camera], {}, {"till": points}, now)
    assert card.suppressed == "suppressed (fewer than 3 people)" and card.index is not None
    [row] = data.sessions()
    assert row.mean_sentiment is not None  # three people in the session
    store.start_session(ControlEvent(type="session_start", camera_id="desk", session_id="desk-s1",
                                     ts=now - 3, purpose="help desk", min_people=3))
    store.apply_detections([detection(0, 0.2, [7], now).model_copy(
        update={"camera_id": "desk", "session_id": "desk-s1"})])
    rows = {r.session_id: r for r in data.sessions()}
    assert rows["desk-s1"].mean_sentiment is None and rows["desk-s1"].faces == 1
    assert rows["till-s1"].mean_sentiment == row.mean_sentiment


def test_min_people_of_one_changes_nothing(store_and_keys):
    client, keys = store_and_keys
    store = SessionStore(client, keys, DEFAULT_VALENCE, 3600, 3600, 0.5)
    now = time.time()
    store.start_session(ControlEvent(type="session_start", camera_id="till", session_id="till-s1",
                                     ts=now - 3))
    store.apply_detections([detection(0, 0.2, [7], now)])
    report = build_report(client, keys, "till-s1")
    assert report["timeline"][0]["sentiment"] is not None and "suppressed" not in report
    assert client.hget(keys.camera_live("till"), "min_people") == "1"
    [camera] = DashboardData(client, keys, clock=lambda: now).cameras()
    assert not camera.suppressed and camera.sentiment is not None
