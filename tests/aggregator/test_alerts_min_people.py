"""min_people and alerts: a window of fewer distinct people than the session's floor has no
mean, so no alert opens on (or records the mood of) one or two people; on a real Valkey the
floor comes from the session_start of the camera file, through the aggregator."""

from __future__ import annotations

import json

import pytest

from aggregator.alerts import AlertMonitor, AlertRule, AlertStore
from aggregator.service import Aggregator
from moodstream.schemas import ControlEvent
from tests.aggregator.conftest import T0, detection
from tests.aggregator.test_lifecycle import TOPICS, record

RULE = AlertRule(window_s=2.0, threshold=0.4, min_duration_s=3.0, resolve_threshold=0.1,
                 clear_s=2.0, cooldown_s=10.0, min_faces=2)


def feed(monitor: AlertMonitor, value: float, tracks: list[int], seconds: float,
         start: float = 0.0, min_people: int = 3) -> list:
    """10 frames a second, one face per track, each with sentiment `value`."""
    events = []
    for i in range(int(seconds * 10)):
        t = start + i / 10
        events += monitor.observe("cam1", "s1", t, len(tracks), value * len(tracks), t,
                                  tracks, min_people)
    return events


def test_no_alert_opens_on_a_window_of_fewer_people_than_min_people():
    monitor = AlertMonitor(RULE)
    assert feed(monitor, -0.9, [1, 2], 20) == []  # two people, floor 3: no mean, no alert
    assert monitor.cameras["cam1"].mean(RULE.min_faces) is None
    opened = feed(monitor, -0.9, [1, 2, 3], 5, start=20)
    assert [e.kind for e in opened] == ["opened"]
    assert opened[0].record["sentiment"] == pytest.approx(-0.9)


def test_one_track_seen_in_many_frames_is_one_person():
    monitor = AlertMonitor(RULE)
    assert feed(monitor, -0.9, [7], 10, min_people=2) == []
    assert [e.kind for e in feed(monitor, -0.9, [7, 8], 5, start=10, min_people=2)] == \
        ["opened"]


def test_an_open_alert_does_not_record_the_mood_of_too_few_people_and_clears():
    monitor = AlertMonitor(RULE)
    opened = feed(monitor, -0.5, [1, 2, 3], 5)
    assert [e.kind for e in opened] == ["opened"]
    # Then two people only: once the third leaves the window, their mood (-1.0) is not
    # recorded, and without a mean the alert clears as it would without evidence.
    events = feed(monitor, -1.0, [1, 2], 10, start=5)
    assert [e.kind for e in events] == ["resolved"]
    assert -1.0 < events[0].record["worst"] < -0.5  # windows that still held all three


def test_people_leave_the_window_with_their_frames():
    monitor = AlertMonitor(RULE)
    feed(monitor, 0.0, [1, 2, 3], 1)
    feed(monitor, 0.0, [4], 3, start=1)
    assert set(monitor.cameras["cam1"].tracks) == {4}  # 1-3 fell out of the 2 s window


@pytest.mark.integration
def test_the_aggregator_applies_the_camera_files_min_people_to_alerts(make_store, redis_conn,
                                                                      keys):
    store = AlertStore(redis_conn, keys, 0)
    agg = Aggregator(make_store(), TOPICS, 30.0, 5.0, AlertMonitor(RULE), store)
    for session, people in (("few", [1, 2]), ("many", [1, 2, 3])):
        start = ControlEvent(type="session_start", camera_id=f"cam-{session}",
                             session_id=session, ts=T0, min_people=3)
        frames = [detection(i, ["angry"] * len(people), camera=f"cam-{session}",
                            session=session, tracks=people) for i in range(60)]
        agg.process([record(start)] + [record(m) for m in frames])
    assert store.min_people("few") == 3  # from the session meta, as session_start set it
    assert redis_conn.lrange(keys.alerts("few"), 0, -1) == []
    assert not redis_conn.hexists(keys.open_alerts, "cam-few")
    opened = json.loads(redis_conn.hget(keys.open_alerts, "cam-many"))
    assert opened["session_id"] == "many" and opened["sentiment"] <= -0.4
