"""Alerts: the hysteresis state machine (unit) and alert records in a real Redis."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from aggregator.alerts import AlertMonitor, AlertRule, AlertStore
from aggregator.service import Aggregator
from aggregator.webhook import WebhookNotifier
from moodstream.emotions import sentiment
from moodstream.embedded import free_port
from moodstream.reports import build_report
from tests.aggregator.conftest import control, detection, probs
from tests.aggregator.test_lifecycle import TOPICS, record

RULE = AlertRule(window_s=2.0, threshold=0.4, min_duration_s=3.0, resolve_threshold=0.1,
                 clear_s=2.0, cooldown_s=10.0, min_faces=2)


def feed(monitor: AlertMonitor, values: list[float], start: float = 0.0, fps: float = 10.0,
         camera: str = "cam1", session: str = "s1") -> list[tuple[float, str]]:
    """One face per frame with the given sentiment; returns (offset_s, kind) of events."""
    out = []
    for i, value in enumerate(values):
        t = start + i / fps
        out += [(round(t, 2), e.kind) for e in monitor.observe(camera, session, t, 1, value, t)]
    return out


def test_alert_opens_only_after_the_minimum_duration():
    monitor = AlertMonitor(RULE)
    # The breach starts at 0.1 s, the first time the window holds min_faces (2) faces.
    assert feed(monitor, [-0.9] * 25) == []  # until 2.4 s: not yet
    assert feed(monitor, [-0.9] * 10, start=2.5) == [(3.1, "opened")]


def test_alert_does_not_flap_around_the_threshold_and_resolves_with_hysteresis():
    monitor = AlertMonitor(RULE)
    events = feed(monitor, [-0.9] * 40)  # opens at 3.1 s
    # Hovering between the open level (-0.4) and the resolve level (-0.1): stays open.
    events += feed(monitor, [-0.45, -0.2] * 50, start=4.0)
    assert events == [(3.1, "opened")]
    # Above the resolve level for clear_s: resolves once, 2 s after the window mean cleared.
    events += feed(monitor, [0.5] * 60, start=14.0)
    assert [kind for _, kind in events] == ["opened", "resolved"]
    assert 15.0 <= events[1][0] <= 17.0


def test_cooldown_holds_back_a_new_alert():
    monitor = AlertMonitor(RULE)
    events = feed(monitor, [-0.9] * 40) + feed(monitor, [0.5] * 50, start=4.0)
    resolved_at = events[-1][0]
    later = feed(monitor, [-0.9] * 200, start=9.0)  # negative again right away
    assert len(later) == 1 and later[0][0] >= resolved_at + RULE.cooldown_s


def test_too_few_faces_count_as_no_evidence():
    monitor = AlertMonitor(RULE)
    out = [e for i in range(100) for e in monitor.observe("c", "s", i * 2.5, 1, -1.0, 0)]
    assert out == []  # one face per 2-second window < min_faces (2)


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", free_port()), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook.received
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_alert_record_opens_and_resolves_in_redis_and_calls_the_webhook(
        make_store, redis_conn, keys, webhook_server):
    url, received = webhook_server
    notifier = WebhookNotifier(url)
    agg = Aggregator(make_store(), TOPICS, 30.0, 5.0, AlertMonitor(RULE),
                     AlertStore(redis_conn, keys, 0, notifier))
    angry = [detection(i, ["angry", "sad"]) for i in range(45)]
    agg.process([record(m) for m in angry])

    opened = json.loads(redis_conn.hget(keys.open_alerts, "cam1"))
    assert opened["status"] == "open" and opened["session_id"] == "s1"
    assert opened["opened_offset_s"] == pytest.approx(3.0)
    assert opened["sentiment"] <= -0.4
    assert redis_conn.hget(keys.camera_live("cam1"), "alert") == "open"

    happy = [detection(i, ["happy", "happy"]) for i in range(45, 120)]
    agg.process([record(m) for m in happy])
    assert redis_conn.hget(keys.open_alerts, "cam1") is None
    assert redis_conn.hget(keys.camera_live("cam1"), "alert") == ""
    records = [json.loads(a) for a in redis_conn.lrange(keys.alerts("s1"), 0, -1)]
    assert len(records) == 1  # resolved in place, not a second record
    assert records[0]["status"] == "resolved" and records[0]["id"] == opened["id"]
    assert records[0]["worst"] == pytest.approx(sentiment(probs("angry")) / 2
                                                + sentiment(probs("sad")) / 2, abs=1e-3)
    assert build_report(redis_conn, keys, "s1")["alerts"] == records

    agg.process([record(m) for m in angry[:10]])  # redelivered: no new alert
    assert redis_conn.llen(keys.alerts("s1")) == 1
    notifier.close()
    assert [p["event"] for p in received] == ["alert_opened", "alert_resolved"]
    assert received[1]["alert"]["id"] == opened["id"]


@pytest.mark.integration
def test_an_open_alert_survives_a_restart(make_store, redis_conn, keys):
    def aggregator():
        return Aggregator(make_store(), TOPICS, 30.0, 5.0, AlertMonitor(RULE),
                          AlertStore(redis_conn, keys, 0))
    aggregator().process([record(detection(i, ["angry", "angry"])) for i in range(40)])
    restarted = aggregator()  # reads alerts:open back
    restarted.process([record(detection(i, ["happy", "happy"])) for i in range(40, 100)])
    records = [json.loads(a) for a in redis_conn.lrange(keys.alerts("s1"), 0, -1)]
    assert [r["status"] for r in records] == ["resolved"]
    assert redis_conn.hlen(keys.open_alerts) == 0


def test_webhook_failures_are_logged_not_fatal(caplog):
    notifier = WebhookNotifier(f"http://127.0.0.1:{free_port()}/nothing-here", timeout_s=1)
    monitor = AlertMonitor(RULE)
    for event in [e for i in range(40) for e in monitor.observe("c", "s", i / 10, 1, -1.0, 0)]:
        notifier(event)
    notifier.close()
    assert notifier.failed == 1 and notifier.sent == 0
    assert "alert webhook" in caplog.text and "failed" in caplog.text


def test_a_straggler_of_the_previous_session_does_not_touch_the_alert():
    monitor = AlertMonitor(RULE)
    assert feed(monitor, [-0.9] * 40, session="s2", start=100.0)[0][1] == "opened"
    assert monitor.observe("cam1", "s1", 5.0, 1, 0.9, 5.0) == []  # older session, older ts
    assert monitor.cameras["cam1"].alert is not None
    events = monitor.observe("cam1", "s3", 0.0, 1, 0.9, 200.0)  # a genuinely new session
    assert [e.kind for e in events] == ["resolved"]
    assert events[0].record["resolved_because"] == "session_changed"


@pytest.mark.integration
def test_closing_a_session_resolves_its_open_alert_before_the_summary(make_store, redis_conn,
                                                                      keys):
    agg = Aggregator(make_store(), TOPICS, 30.0, 5.0, AlertMonitor(RULE),
                     AlertStore(redis_conn, keys, 0))
    agg.process([record(detection(i, ["angry", "angry"])) for i in range(40)])
    assert redis_conn.hexists(keys.open_alerts, "cam1")
    agg.process([record(control("session_end", frames=40))])
    summary = json.loads(redis_conn.get(keys.summary("s1")))
    assert [(a["status"], a["resolved_because"]) for a in summary["alerts"]] == [
        ("resolved", "session_closed")]
    assert not redis_conn.hexists(keys.open_alerts, "cam1")
    assert redis_conn.hget(keys.camera_live("cam1"), "alert") == ""


def test_each_camera_follows_its_own_rule():
    strict = dataclasses.replace(RULE, threshold=0.2, min_duration_s=1.0)
    monitor = AlertMonitor(RULE, rules=lambda camera: strict if camera == "strict" else RULE)
    mild = [-0.3] * 40  # inside RULE's threshold (0.4), past the strict one (0.2)
    assert feed(monitor, mild, camera="calm") == []
    events = feed(monitor, mild, camera="strict")
    assert events == [(1.1, "opened")]  # breach from 0.1 s (min_faces), 1 s long
    assert monitor.cameras["strict"].alert["threshold"] == -0.2
