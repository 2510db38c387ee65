"""Per-camera alert thresholds from Redis (aggregator.thresholds), on a real Valkey: an edit
reaches the running alert logic within the refresh period, without a restart and without a
Redis round trip per message; bad entries leave the camera on the defaults."""

from __future__ import annotations

import json
import time

import pytest
import redis

from aggregator.alerts import AlertMonitor, AlertRule, AlertStore
from aggregator.service import Aggregator
from aggregator.thresholds import REFRESH_S, ThresholdRules
from dashboard.alerts_data import AlertsData
from dashboard.data import DashboardData
from moodstream.emotions import sentiment
from tests.aggregator.conftest import control, detection, probs
from tests.aggregator.test_lifecycle import TOPICS, record
from tests.aggregator.test_main import prepare, produce, start_aggregator, stop, wait_for

pytestmark = pytest.mark.integration
DEFAULT = AlertRule(window_s=2.0, threshold=0.4, min_duration_s=3.0, resolve_threshold=0.1,
                    clear_s=2.0, cooldown_s=10.0, min_faces=2)
# One sad and one neutral face a frame: a window mean of about -0.37, inside the default
# threshold (0.4) but past an edited one of 0.3.
MILD = ["sad", "neutral"]
MILD_MEAN = (sentiment(probs("sad")) + sentiment(probs("neutral"))) / 2


class CountingRedis(redis.Redis):
    """The real client, counting the thresholds reads it sends."""

    reads = 0

    def hgetall(self, name):
        type(self).reads += name.endswith(":alert_thresholds")
        return super().hgetall(name)


@pytest.fixture
def counting_conn(redis_server):
    CountingRedis.reads = 0
    client = CountingRedis(host=redis_server.host, port=redis_server.port, db=15,
                           decode_responses=True)
    yield client
    client.close()


def admin_edit(client, keys, camera: str, *values) -> None:
    """What the dashboard writes when an admin saves thresholds (the same code)."""
    AlertsData(DashboardData(client, keys), ack_ttl_s=0).set_thresholds(camera, *values, "boss")


def test_the_mild_stream_sits_between_the_two_thresholds():
    assert -0.4 < MILD_MEAN < -0.3


def test_rules_follow_the_stored_thresholds_after_the_refresh_period(counting_conn, keys):
    now = [0.0]
    rules = ThresholdRules(counting_conn, keys, DEFAULT, refresh_s=5.0, clock=lambda: now[0])
    assert rules.rule_for("cam1") == DEFAULT
    admin_edit(counting_conn, keys, "cam1", 0.3, 0.05, 1)
    assert rules.rule_for("cam1") == DEFAULT  # cached: not read again yet
    now[0] = 5.0
    edited = rules.rule_for("cam1")
    assert (edited.threshold, edited.resolve_threshold, edited.min_duration_s) == (0.3, 0.05, 1.0)
    assert (edited.window_s, edited.clear_s, edited.cooldown_s, edited.min_faces) == (
        DEFAULT.window_s, DEFAULT.clear_s, DEFAULT.cooldown_s, DEFAULT.min_faces)
    assert rules.rule_for("cam2") == DEFAULT  # other cameras keep the defaults
    assert CountingRedis.reads == 2
    for _ in range(1000):
        rules.rule_for("cam1")
    assert CountingRedis.reads == 2  # no Redis round trip per lookup


@pytest.mark.parametrize("entry", [
    "not json", "[]", json.dumps({"threshold": 0.2}),
    json.dumps({"threshold": 0.2, "resolve_threshold": 0.3, "min_duration_s": 1}),  # resolve > open
    json.dumps({"threshold": "NaN", "resolve_threshold": 0.1, "min_duration_s": 1}),
    json.dumps({"threshold": 0.2, "resolve_threshold": 0.1, "min_duration_s": 1e9}),
    json.dumps({"threshold": True, "resolve_threshold": 0.1, "min_duration_s": 1}),
])
def test_an_invalid_stored_entry_leaves_the_defaults(redis_conn, keys, entry, caplog):
    redis_conn.hset(keys.alert_thresholds, "cam1", entry)
    rules = ThresholdRules(redis_conn, keys, DEFAULT)
    assert rules.rule_for("cam1") == DEFAULT
    assert "ignored an invalid entry" in caplog.text


def test_removing_the_entry_brings_the_defaults_back(redis_conn, keys):
    now = [0.0]
    rules = ThresholdRules(redis_conn, keys, DEFAULT, refresh_s=1.0, clock=lambda: now[0])
    admin_edit(redis_conn, keys, "cam1", 0.3, 0.05, 1)
    assert rules.rule_for("cam1").threshold == 0.3
    redis_conn.hdel(keys.alert_thresholds, "cam1")
    now[0] = 1.0
    assert rules.rule_for("cam1") == DEFAULT


def test_an_edit_takes_effect_on_the_running_aggregator(make_store, counting_conn, keys):
    now = [0.0]
    rules = ThresholdRules(counting_conn, keys, DEFAULT, refresh_s=5.0, clock=lambda: now[0])
    agg = Aggregator(make_store(), TOPICS, 30.0, 5.0, AlertMonitor(DEFAULT, rules=rules.rule_for),
                     AlertStore(counting_conn, keys, 0))
    agg.process([record(detection(i, MILD)) for i in range(60)])  # 6 s: no alert by default
    assert not counting_conn.hexists(keys.open_alerts, "cam1")
    admin_edit(counting_conn, keys, "cam1", 0.3, 0.05, 1)
    agg.process([record(detection(i, MILD)) for i in range(60, 80)])
    assert not counting_conn.hexists(keys.open_alerts, "cam1")  # not re-read yet
    now[0] = 5.0  # the refresh period passes
    agg.process([record(detection(i, MILD)) for i in range(80, 120)])
    opened = json.loads(counting_conn.hget(keys.open_alerts, "cam1"))
    # The breach counts from the first frame under the new rule (8.0 s), for 1 s.
    assert opened["threshold"] == -0.3 and opened["opened_offset_s"] == pytest.approx(9.0)
    assert opened["sentiment"] == pytest.approx(MILD_MEAN, abs=1e-3)
    assert CountingRedis.reads == 2  # 120 frames, two reads of the thresholds


@pytest.mark.slow
def test_an_edit_reaches_the_aggregator_process_without_a_restart(stack_env, tmp_path):
    r, keys = prepare(stack_env)
    log_path = tmp_path / "aggregator.log"
    # Defaults that the mild stream (-0.37) does not breach: threshold 0.45 for 5 s.
    env = dict(stack_env, MOODSTREAM_AGGREGATOR_ALERT_THRESHOLD="0.45",
               MOODSTREAM_AGGREGATOR_ALERT_MIN_DURATION_S="5")
    proc = start_aggregator(env, log_path, "--assign", "all")
    try:
        produce(stack_env, [control("session_start"), *[detection(i, MILD) for i in range(100)]])
        wait_for(lambda: r.hget(keys.totals("s1"), "frames") == "100", 60, "first frames",
                 proc, log_path)
        assert not r.hexists(keys.open_alerts, "cam1")
        admin_edit(r, keys, "cam1", 0.3, 0.05, 1)
        time.sleep(REFRESH_S + 0.5)  # the aggregator re-reads the thresholds by then
        produce(stack_env, [detection(i, MILD) for i in range(100, 200)])
        wait_for(lambda: r.hexists(keys.open_alerts, "cam1"), 60, "alert under the new threshold",
                 proc, log_path)
        assert json.loads(r.hget(keys.open_alerts, "cam1"))["threshold"] == -0.3
        assert proc.poll() is None  # the same process all along
    finally:
        code = stop(proc)
    assert code == 0, log_path.read_text()[-2000:]
    assert "alert thresholds of camera 'cam1': now" in log_path.read_text()
