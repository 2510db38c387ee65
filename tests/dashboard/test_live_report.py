"""The drill-down's incremental reader of open sessions (dashboard.live_report) on a real
Valkey filled by the aggregator's apply code: the same report as build_report's full read,
tick after tick, while reading only the seconds not settled yet."""

from __future__ import annotations

import time

import pytest

from dashboard.data import DashboardData
from dashboard.live_report import PROBE_S, SECONDS_SCRIPT, LiveReports
from dashboard.settled_seconds import SETTLE_S, SettledSeconds
from moodstream.redis_keys import BUCKET_NAMES, RedisKeys
from moodstream.reports import build_report
from moodstream.schemas import MAX_OFFSET_S
from tests.conftest import redis_namespace
from tests.dashboard.redis_fill import FPS, Filler

pytestmark = pytest.mark.integration
NOW = time.time()
SECONDS = 600


@pytest.fixture
def filled(redis_server):
    with redis_namespace(redis_server, 12) as (client, prefix, _url):
        yield Filler(client, prefix), client, RedisKeys(prefix)


def hmget_calls(client) -> int:
    """HMGETs Valkey ran so far, those inside scripts included."""
    return client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)


def test_an_open_session_reads_only_its_unsettled_seconds_and_matches_a_full_read(filled):
    filler, client, keys = filled
    started = NOW - SECONDS
    filler.session("cam-a", "live-a", started, SECONDS, 0.6, -0.7, people=3)
    reports = LiveReports(client, keys)
    before = hmget_calls(client)
    assert reports.report("live-a") == build_report(client, keys, "live-a")
    assert hmget_calls(client) - before >= SECONDS  # first read: every second once
    seq = SECONDS * FPS
    for step in range(3):  # ten new seconds a tick, plus a late frame inside the window
        first = SECONDS + 10 * step
        seq = filler.frames("cam-a", "live-a", started, range(first, first + 10), -0.7, 0.2,
                            people=2, seq=seq)
        seq = filler.frames("cam-a", "live-a", started, range(first - 30, first - 29), 0.9,
                            0.9, people=4, seq=seq)
        before = hmget_calls(client)
        incremental = reports.report("live-a")
        read = hmget_calls(client) - before
        assert incremental == build_report(client, keys, "live-a")
        assert incremental["duration_s"] == first + 10
        # The unsettled minute, the new seconds and the probe past the newest, once each.
        assert read <= SETTLE_S + 10 + PROBE_S + 2


def test_a_session_its_camera_moved_on_from_is_bounded_by_its_newest_frame(filled):
    filler, client, keys = filled
    filler.session("cam-c", "old-c", NOW - 800, 200, 0.2, 0.3)
    filler.session("cam-c", "new-c", NOW - 100, 40, -0.2, 0.3)  # the live hash is on new-c
    reports = LiveReports(client, keys)
    assert reports.report("old-c") == build_report(client, keys, "old-c")
    filler.frames("cam-c", "old-c", NOW - 800, range(200, 203), 0.9, 0.9, seq=400)  # late
    before = hmget_calls(client)
    assert reports.report("old-c") == build_report(client, keys, "old-c")
    assert hmget_calls(client) - before <= SETTLE_S + 3 + PROBE_S + 2


def test_sessions_it_cannot_bound_are_read_in_full(filled):
    filler, client, keys = filled
    filler.session("cam-b", "done-b", NOW - 900, 40, 0.2, 0.3, end=True)
    filler.session("cam-e", "far-e", NOW - 100, 40, -0.2, 0.3)
    reports = LiveReports(client, keys)
    for _tick in range(2):
        assert reports.report("done-b") == build_report(client, keys, "done-b")
    client.hset(keys.camera_live("cam-e"), "offset_s", "1e300")  # not a second to walk to
    before = hmget_calls(client)
    assert reports.report("far-e") == build_report(client, keys, "far-e")
    assert hmget_calls(client) - before <= 1  # the live hash's: the buckets by HGETALL


def test_min_people_hides_the_same_seconds_as_the_full_report(filled):
    filler, client, keys = filled
    filler.session("cam-d", "few-d", NOW - 200, 200, 0.5, -0.5, people=2, min_people=3)
    reports = LiveReports(client, keys)
    full = build_report(client, keys, "few-d")
    assert full["mean_sentiment"] is None and full["timeline"]
    assert all(entry["sentiment"] is None for entry in full["timeline"])
    for _tick in range(2):
        assert reports.report("few-d") == full


def test_the_shared_reader_drills_down_incrementally_to_the_same_figures(filled):
    filler, client, keys = filled
    started = NOW - 300
    filler.session("cam-e", "live-e", started, 300, 0.1, -0.4)
    now = [NOW]
    shared = DashboardData(client, keys, clock=lambda: now[0], cache_s=2.0)
    plain = DashboardData(client, keys, clock=lambda: now[0])
    seq = 300 * FPS
    for tick in range(3):
        now[0] += 2.0
        seq = filler.frames("cam-e", "live-e", started, range(300 + tick, 301 + tick), 0.3,
                            0.3, seq=seq)
        assert shared.shared_report("live-e") == plain.report("live-e")


def test_the_seconds_script_refuses_ranges_it_was_not_meant_to_walk(filled):
    _filler, client, keys = filled
    script = client.register_script(SECONDS_SCRIPT)
    names, max_t = ",".join(BUCKET_NAMES), int(MAX_OFFSET_S)
    for lo, hi in ((5, 4), (-1, 3), (0.5, 3), (0, 3600), (1e17, 1e17), (max_t, max_t + 1)):
        assert script(keys=[keys.buckets("x"), keys.bucket_tracks("x")],
                      args=[lo, hi, 3600, names, max_t]) == ""
    assert script(keys=[keys.buckets("x"), keys.bucket_tracks("x")],
                  args=[0, 2, 3600, names, max_t]) == ";;"  # three seconds without frames


def test_settled_seconds_keep_at_most_max_kept_owners_least_recent_first():
    settled = SettledSeconds(settle_s=1, max_kept=2)
    for owner in ("a", "b", "a", "c"):  # "b" is now the least recently read
        settled.merge(owner, "k", range(0, 10), [(t, t) for t in range(10)])
    assert settled.first_unread("a", "k", range(0, 10)) == 9
    assert settled.first_unread("c", "k", range(0, 10)) == 9
    assert settled.first_unread("b", "k", range(0, 10)) == 0


@pytest.mark.slow
def test_on_a_redis_cluster_each_session_is_read_from_its_own_node(unique_prefix):
    """The script's two keys share the session's hash tag; sessions on all three nodes."""
    from dashboard.__main__ import dashboard_redis
    from moodstream.settings import CommonSettings
    from tests.moodstream.redis_cluster import LocalRedisCluster
    from tests.moodstream.test_redis_cluster import SESSIONS, node_of

    assert sorted(node_of(f"sess:{s}") for s in SESSIONS) == [0, 1, 2]
    with LocalRedisCluster(3) as cluster:
        client = dashboard_redis(CommonSettings.load(redis_url=cluster.url))
        keys, filler = RedisKeys(unique_prefix), Filler(client, unique_prefix)
        reports = LiveReports(client, keys)
        for session, camera in SESSIONS.items():
            filler.session(camera, session, NOW - 120, 120, 0.4, -0.4)
        for session, camera in SESSIONS.items():
            assert reports.report(session) == build_report(client, keys, session)
            started = client.hget(keys.meta(session), "started_at")  # read incrementally:
            assert reports._settled.first_unread(session, started, range(120)) == 120 - SETTLE_S
            filler.frames(camera, session, NOW - 120, range(120, 125), 0.1, 0.1,
                          seq=120 * FPS)
            assert reports.report(session) == build_report(client, keys, session)
        client.close()
