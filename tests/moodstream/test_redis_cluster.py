"""moodstream on a real 3-node Redis Cluster (valkey-server, slots assigned here): the
aggregator's apply/lifecycle scripts, alerts and hourly rollups, a report and the
dashboard's data layer.

redis-py refuses a multi-key command or script whose keys are in different slots
("... all keys must map to the same key slot") and the server answers CROSSSLOT, so
every test passing here also proves each script touches a single slot. The sessions and
cameras used are picked to land on all three nodes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from aggregator.alerts import AlertEvent, AlertStore
from aggregator.rollups import HourlyRollups
from aggregator.store import SessionStore
from dashboard.__main__ import dashboard_redis
from dashboard.data import DashboardData, DataUnavailable, SessionFilter
from moodstream.clients import redis_client
from moodstream.emotions import DEFAULT_VALENCE
from moodstream.redis_keys import RedisKeys, parse_rollup
from moodstream.reports import build_report
from moodstream.settings import CommonSettings
from tests.aggregator.conftest import REPO_ROOT, control, detection
from tests.aggregator.test_store import expected_report_numbers, stream
from tests.dashboard.redis_fill import Filler
from tests.moodstream.redis_cluster import LocalRedisCluster, slot_ranges

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# (session, camera) pairs whose hash tags fall in the three nodes' slot ranges (0, 1, 2).
SESSIONS = {"s1": "cam2", "s2": "cam1", "s3": "door"}


@pytest.fixture(scope="module")
def cluster():
    with LocalRedisCluster(3) as local:
        yield local


@pytest.fixture(scope="module")
def client(cluster):
    client = redis_client(CommonSettings.load(redis_url=cluster.url))
    yield client
    client.close()


@pytest.fixture
def keys(unique_prefix) -> RedisKeys:
    return RedisKeys(unique_prefix)


def node_of(tag: str) -> int:
    """Which of the three nodes owns the slot of a hash tag."""
    slot = key_slot(tag.encode())
    return next(i for i, (first, last) in enumerate(slot_ranges(3)) if first <= slot <= last)


def test_redis_url_with_cluster_scheme_gives_a_cluster_client(client, keys):
    assert isinstance(client, RedisCluster) and len(client.get_primaries()) == 3
    assert sorted(node_of(f"sess:{s}") for s in SESSIONS) == [0, 1, 2]
    assert sorted({node_of(f"cam:{c}") for c in SESSIONS.values()}) == [0, 1, 2]
    session_keys = [*keys.session_keys("s1"), keys.seen("s1", "0"), keys.summary("s1")]
    assert {client.keyslot(k) for k in session_keys} == {key_slot(b"sess:s1")}
    assert {client.keyslot(keys.camera_live("cam2")), client.keyslot(keys.alert_acks("cam2"))} \
        == {key_slot(b"cam:cam2")}


def test_aggregator_store_applies_dedupes_and_closes_on_a_cluster(client, keys):
    store = SessionStore(client, keys, DEFAULT_VALENCE, bucket_ttl_s=3600,
                         summary_ttl_s=7200, ema_alpha=0.5)
    clips = {s: stream(30, session=s, camera=c) for s, c in SESSIONS.items()}
    for session, camera in SESSIONS.items():
        assert store.start_session(control("session_start", camera=camera, session=session))
    batch = [m for clip in zip(*clips.values()) for m in clip]  # sessions interleaved
    assert all(a.applied for a in store.apply_detections(batch))

    before = {s: client.hgetall(keys.totals(s)) for s in SESSIONS}
    again = store.apply_detections(batch[10:50] + batch[:5])  # redelivered
    assert not any(a.applied for a in again)
    assert {s: client.hgetall(keys.totals(s)) for s in SESSIONS} == before

    for session, camera in SESSIONS.items():
        end = control("session_end", camera=camera, session=session, frames=30)
        assert store.end_session(end) == ("ending", 30, 30)
        assert store.close_session(session, "complete") == camera
        assert store.close_session(session, "complete") is None  # idempotent
        summary = store.write_summary(session)
        expected = expected_report_numbers(clips[session])
        assert summary["frames_processed"] == expected["frames"] == 30
        assert summary["faces_detected"] == expected["faces"]
        assert summary["mean_sentiment"] == pytest.approx(expected["mean_sentiment"], abs=1e-4)
        assert client.hget(keys.camera_live(camera), "status") == "closed"
        assert client.ttl(keys.camera_live(camera)) > 0
    assert set(client.zrange(keys.sessions, 0, -1)) == set(SESSIONS)
    assert client.zcard(keys.active_sessions) == 0
    last_seen = {m.camera_id: m.capture_ts for m in batch}  # the newest frame of each camera
    assert dict(client.zrange(keys.cameras, 0, -1, withscores=True)) == \
        pytest.approx(last_seen)


def test_scripts_missing_on_a_node_are_loaded_and_nothing_counts_twice(client, keys):
    """A restarted or new node has no scripts: NOSCRIPT, load on every primary, run again."""
    store = SessionStore(client, keys, DEFAULT_VALENCE, 0, 0, 0.5)
    clips = {s: stream(12, session=s, camera=c) for s, c in SESSIONS.items()}
    store.apply_detections(m for clip in clips.values() for m in clip[:6])
    apply_sha = hashlib.sha1((REPO_ROOT / "aggregator" / "apply_detection.lua").read_bytes())
    assert client.script_exists(apply_sha.hexdigest()) == [True]
    client.script_flush()  # on every primary
    assert client.script_exists(apply_sha.hexdigest()) == [False]
    applied = store.apply_detections(m for clip in clips.values() for m in clip)
    assert [a.applied for a in applied] == ([False] * 6 + [True] * 6) * 3
    for session, clip in clips.items():
        assert build_report(client, keys, session)["frames_processed"] == len(clip)
        assert client.hget(keys.camera_live(SESSIONS[session]), "session_id") == session


def test_alerts_are_written_across_slots_without_a_transaction(client, keys):
    alerts = AlertStore(client, keys, ttl_s=600)
    record = {"id": "a1", "camera_id": "door", "session_id": "s1", "status": "open",
              "opened_at": time.time(), "opened_offset_s": 3.0, "worst": -0.6}
    alerts.write(AlertEvent("opened", record))
    assert json.loads(client.hget(keys.open_alerts, "door"))["id"] == "a1"
    assert client.hget(keys.camera_live("door"), "alert") == "open"
    alerts.write(AlertEvent("resolved", dict(record, status="resolved")))
    assert client.hget(keys.open_alerts, "door") is None
    assert [json.loads(a)["status"] for a in client.lrange(keys.alerts("s1"), 0, -1)] == \
        ["resolved"]


def test_report_command_reads_a_session_from_the_cluster(cluster, client, keys, tmp_path):
    store = SessionStore(client, keys, DEFAULT_VALENCE, 0, 0, 0.5)
    clip = stream(25, session="s3", camera="door")
    store.apply_detections(clip)
    expected = expected_report_numbers(clip)
    out = tmp_path / "s3.json"
    env = {"REDIS_URL": cluster.url, "MOODSTREAM_REDIS_PREFIX": keys.prefix,
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "moodstream", "report", "s3", "--report",
                           str(out)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report == build_report(client, keys, "s3")
    assert report["frames_processed"] == expected["frames"]
    assert report["faces_detected"] == expected["faces"]
    assert report["excluded_faces"] == expected["excluded"]
    assert [(p["t"], p["frames"]) for p in report["timeline"]] == \
        [(t, b["frames"]) for t, b in sorted(expected["timeline"].items())]


def test_dashboard_data_layer_reads_the_cluster(cluster, client, keys):
    now = time.time()
    filler = Filler(client, keys.prefix)  # the real Aggregator.process, alerts included
    filler.session("cam2", "s1", now - 90, 90, 0.8, 0.8)
    filler.session("cam1", "s2", now - 60, 60, -0.9, -0.9)
    filler.session("door", "s3", now - 600, 20, 0.2, 0.2, end=True)
    reader = dashboard_redis(CommonSettings.load(redis_url=cluster.url))  # the dashboard's own
    assert isinstance(reader, RedisCluster)
    data = DashboardData(reader, keys, clock=lambda: now)

    cameras = {c.camera_id: c for c in data.cameras()}
    assert set(cameras) == {"cam2", "cam1", "door"}
    assert cameras["cam2"].session_id == "s1" and cameras["cam2"].sentiment > 0
    assert cameras["cam1"].sentiment < 0 and cameras["cam1"].alert
    assert set(data.open_alerts()) == {"cam1"}
    series = data.series(data.cameras(), 60)  # the trend script, once per camera's slot
    assert set(series) == {"cam2", "cam1"}
    assert all(len(points) >= 55 for points in series.values())
    rows = {row.session_id: row for row in data.sessions()}
    assert set(rows) == {"s1", "s2", "s3"} and rows["s3"].status == "closed"
    assert rows["s1"].mean_sentiment > 0 > rows["s2"].mean_sentiment
    assert [r.session_id for r in data.sessions(SessionFilter(camera_id="door"))] == ["s3"]
    assert {r.session_id for r in data.active_sessions()} == {"s1", "s2"}
    report = data.report("s1")
    assert report["frames_processed"] == rows["s1"].frames == 90 * 2
    assert report["faces_detected"] == rows["s1"].faces
    reader.close()


def test_hourly_rollups_read_and_write_on_a_cluster(client, keys):
    now = time.time()
    filler = Filler(client, keys.prefix)
    for session, camera in SESSIONS.items():
        filler.session(camera, session, now - 40, 40, 0.5, -0.5)
    rollups = HourlyRollups(client, keys, rollup_ttl_s=86400, parts_ttl_s=86400)
    assert rollups.run(now) >= len(SESSIONS)  # one read and one write script per part
    for session, camera in SESSIONS.items():
        hours = [parse_rollup(v) for v in client.hvals(keys.rollup_hourly(camera))]
        assert sum(h[0] for h in hours) == 40 * 2  # frames: 40 s at 2 fps
        assert sum(h[1] for h in hours) == build_report(client, keys, session)["faces_detected"]


def test_a_cluster_gone_is_data_unavailable_for_the_dashboard(unique_prefix):
    """With every node down RedisCluster raises RedisClusterException, not a RedisError."""
    with LocalRedisCluster(3) as gone:
        client = dashboard_redis(CommonSettings.load(redis_url=gone.url))
    data = DashboardData(client, RedisKeys(unique_prefix))
    for call in (data.cameras, data.open_alerts, data.sessions, data.active_sessions):
        with pytest.raises(DataUnavailable, match="Redis unreachable"):
            call()
