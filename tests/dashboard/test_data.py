"""DashboardData on a real Redis filled by the aggregator's apply code."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashboard.data import (MAX_TREND_SECONDS, TREND_SCRIPT, DashboardData, DataUnavailable,
                            SessionFilter)
from dashboard.layout import cameras_table, describe_alert, fmt_time, sessions_table
from moodstream.embedded import free_port
from moodstream.redis_keys import RedisKeys
from moodstream.reports import ReportError, SessionNotFound
from moodstream.schemas import MAX_OFFSET_S
from dashboard.settled_seconds import SETTLE_S, SettledSeconds
from tests.dashboard.redis_fill import Filler
from tests.conftest import redis_namespace

pytestmark = pytest.mark.integration
NOW = time.time()


@pytest.fixture(scope="module")
def store(redis_server):
    with redis_namespace(redis_server, 14) as (client, prefix, _url):
        filler = Filler(client, prefix)
        filler.session("cam-a", "old-a", NOW - 3 * 86400, 20, 0.6, 0.6, end=True)
        filler.session("cam-a", "live-a", NOW - 120, 120, 0.8, -0.9)
        filler.session("cam-b", "live-b", NOW - 60, 60, -0.2, 0.9, people=3)
        filler.session("cam-c", "gone-c", NOW - 4000, 30, 0.0, 0.0)  # silent for an hour
        yield DashboardData(client, RedisKeys(prefix), clock=lambda: NOW), client, prefix


def test_cameras_newest_first_with_live_state(store):
    data, _, _ = store
    cameras = data.cameras()
    assert {c.camera_id for c in cameras[:2]} == {"cam-a", "cam-b"}
    assert cameras[2].camera_id == "cam-c"  # silent for an hour: last
    cam_a, cam_b = sorted(cameras[:2], key=lambda c: c.camera_id)
    assert cam_a.session_id == "live-a" and cam_a.sentiment < 0 and cam_a.alert
    assert cam_b.session_id == "live-b" and cam_b.sentiment > 0 and cam_b.people == 3
    assert abs(sum(cam_b.probs.values()) - 1) < 0.01 and cam_b.dominant in cam_b.probs


def test_trend_keeps_the_window_and_leaves_gaps(store):
    data, _, _ = store
    series = data.trend(data.cameras(), 60)
    assert set(series) == {"cam-a · live-a", "cam-b · live-b"}  # cam-c silent: left out
    earliest = datetime.utcfromtimestamp(NOW - 60) - timedelta(seconds=1)
    for points in series.values():
        assert 55 <= len(points) <= 61 and all(x >= earliest for x, _ in points)
        assert any(y is None for _, y in points)  # faceless seconds stay gaps
    assert series["cam-a · live-a"][-1][1] < -0.5 < 0.5 < series["cam-b · live-b"][-1][1]
    assert len(data.trend(data.cameras(), 900)["cam-a · live-a"]) == 120


def test_trend_matches_the_session_report_second_by_second(store):
    data, _, _ = store
    series = data.trend(data.cameras(), 900)["cam-b · live-b"]
    timeline = data.report("live-b")["timeline"]
    assert [y for _, y in series] == [row["sentiment"] for row in timeline]


def test_trend_of_a_file_running_ahead_of_the_clock(store):
    # A recorded file processed faster than real time has seconds "in the future":
    # the last applied offset, not the wall clock, bounds the window.
    data, _, _ = store
    later = DashboardData(data.client, data.keys, clock=lambda: NOW - 30)
    points = later.trend(later.cameras(), 60)["cam-b · live-b"]
    assert len(points) == 60 and points[-1][0] > datetime.utcfromtimestamp(NOW - 30)


def test_sessions_filters(store):
    data, _, _ = store
    assert [r.session_id for r in data.sessions()] == ["live-b", "live-a", "gone-c", "old-a"]
    assert [r.session_id for r in data.sessions(SessionFilter(camera_id="cam-a"))] == \
        ["live-a", "old-a"]
    recent = data.sessions(SessionFilter(start_ts=NOW - 86400))
    assert "old-a" not in [r.session_id for r in recent] and len(recent) == 3
    old = data.sessions(SessionFilter(end_ts=NOW - 86400))
    assert [r.session_id for r in old] == ["old-a"]
    happy = data.sessions(SessionFilter(min_sentiment=0.3))
    assert [r.session_id for r in happy] == ["old-a"]
    sour = data.sessions(SessionFilter(max_sentiment=-0.01))
    assert "live-a" in [r.session_id for r in sour] and "old-a" not in [r.session_id for r in sour]
    assert len(data.sessions(limit=2)) == 2
    oldest = data.sessions(SessionFilter(oldest_first=True))
    assert [r.session_id for r in oldest] == ["old-a", "gone-c", "live-a", "live-b"]
    assert [r.session_id for r in data.sessions(SessionFilter(
        camera_id="cam-a", oldest_first=True), limit=1, offset=1)] == ["live-a"]


def test_active_sessions_leave_out_closed_ones(store):
    data, _, _ = store
    active = [r.session_id for r in data.active_sessions()]
    assert "old-a" not in active and {"live-a", "live-b"} <= set(active)


def test_open_alerts_and_reports(store):
    data, _, _ = store
    alerts = data.open_alerts()
    assert list(alerts) == ["cam-a"] and alerts["cam-a"]["session_id"] == "live-a"
    report = data.report("live-b")
    assert report["session_id"] == "live-b" and len(report["timeline"]) == 60
    with pytest.raises(ReportError):
        data.report("../etc/passwd")
    with pytest.raises(SessionNotFound):
        data.report("no-such-session")


def test_crafted_index_members_are_never_used_as_keys(store):
    data, client, prefix = store
    client.zadd(RedisKeys(prefix).sessions, {"bad id\n": NOW})
    client.zadd(RedisKeys(prefix).cameras, {"cam*": NOW})
    try:
        assert "bad id\n" not in [r.session_id for r in data.sessions()]
        assert "cam*" not in [c.camera_id for c in data.cameras()]
    finally:
        client.zrem(RedisKeys(prefix).sessions, "bad id\n")
        client.zrem(RedisKeys(prefix).cameras, "cam*")


def test_expired_session_data_falls_back_on_the_summary(store):
    data, client, prefix = store
    meta = client.hgetall(RedisKeys(prefix).meta("old-a"))
    client.delete(RedisKeys(prefix).meta("old-a"))
    try:
        row = next(r for r in data.sessions() if r.session_id == "old-a")
        assert row.camera_id == "cam-a" and row.status == "closed" and row.mean_sentiment > 0.3
    finally:
        client.hset(RedisKeys(prefix).meta("old-a"), mapping=meta)


def test_unreachable_redis_becomes_data_unavailable():
    client = redis.Redis(port=free_port(), socket_connect_timeout=1, decode_responses=True,
                         retry=Retry(NoBackoff(), 1))
    data = DashboardData(client, RedisKeys("x"))
    for call in (data.cameras, data.open_alerts, data.sessions, data.active_sessions):
        with pytest.raises(DataUnavailable, match="Redis unreachable"):
            call()


def test_trend_never_loops_over_a_range_taken_from_redis_data(store):
    # offset_s = 1e17 once reached a camera's live hash: the trend script looped
    # `for t = 1e17 - 900, 1e17` forever (t + 1 == t in doubles) and Redis answered BUSY.
    data, client, prefix = store
    client.hset(RedisKeys(prefix).camera_live("cam-z"),
                mapping={"session_id": "zz", "offset_s": "1e17", "last_seen": str(NOW)})
    client.hset(RedisKeys(prefix).meta("zz"),
                mapping={"camera_id": "cam-z", "started_at": str(NOW - 60)})
    client.zadd(RedisKeys(prefix).cameras, {"cam-z": NOW})
    try:
        started = time.monotonic()
        series = data.trend(data.cameras(), 900)
        assert "cam-z · zz" not in series and "cam-b · live-b" in series
        script = client.register_script(TREND_SCRIPT)
        for lo, hi in ((1e17 - 900, 1e17), (0, 10 ** 9), (5, 4), (-3, 2), (0.5, 2), (0, "nan")):
            assert script(keys=[RedisKeys(prefix).buckets("zz")],
                          args=[lo, hi, MAX_TREND_SECONDS, int(MAX_OFFSET_S)]) == ""
        assert time.monotonic() - started < 5
    finally:
        client.delete(RedisKeys(prefix).camera_live("cam-z"), RedisKeys(prefix).meta("zz"))
        client.zrem(RedisKeys(prefix).cameras, "cam-z")


@pytest.mark.parametrize("bad", ["1e20", "-1e20", "nan", "inf", "1e300"])
def test_extreme_timestamps_never_overflow_the_sessions_page(store, bad):
    data, client, prefix = store
    client.zadd(RedisKeys(prefix).sessions, {"weird": NOW + 1})
    client.hset(RedisKeys(prefix).meta("weird"), mapping={
        "camera_id": "cam-a", "started_at": bad, "ended_at": bad, "status": "closed"})
    client.hset(RedisKeys(prefix).camera_live("cam-a"), "last_seen", bad)
    try:
        rows = data.sessions()
        weird = next(r for r in rows if r.session_id == "weird")
        assert weird.started_at is None and weird.ended_at is None
        table = str(sessions_table(rows))
        assert "weird" in table and "—" in table
        cam_a = next(c for c in data.cameras() if c.camera_id == "cam-a")
        assert cam_a.last_seen is None
        cameras_table(data.cameras(), {}, NOW)  # renders
    finally:
        client.zrem(RedisKeys(prefix).sessions, "weird")
        client.delete(RedisKeys(prefix).meta("weird"))
        client.hset(RedisKeys(prefix).camera_live("cam-a"), "last_seen", str(NOW))


@pytest.mark.parametrize("ts", [1e20, -1e20, float("nan"), float("inf"), 10 ** 400])
def test_fmt_time_and_alert_lines_survive_extreme_timestamps(ts):
    assert fmt_time(ts) == "—"
    assert "since — UTC" in describe_alert({"opened_at": ts, "resolved_at": ts})


def _commands(client: redis.Redis) -> int:
    """Commands Redis has executed (INFO commandstats), INFO itself left out."""
    return sum(stat["calls"] for name, stat in client.info("commandstats").items()
               if name != "cmdstat_info")


def _refresh(data: DashboardData, viewers: int) -> None:
    """What each open page asks on one tick: header, overview and Workers line."""
    def one_viewer():
        data.live()
        data.live().alerts
        data.shared("workers", lambda: data.client.hgetall(data.keys.workers))

    threads = [threading.Thread(target=one_viewer) for _ in range(viewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_redis_commands_per_refresh_do_not_grow_with_viewers(store):
    data, client, _ = store
    _refresh(DashboardData(client, data.keys, clock=lambda: NOW), 1)  # loads the trend script
    spent = {}
    for viewers in (1, 10):
        shared = DashboardData(client, data.keys, clock=lambda: NOW, cache_s=2.0)
        before = _commands(client)
        _refresh(shared, viewers)
        spent[viewers] = _commands(client) - before
    assert spent[1] == spent[10] > 0
    # Without the shared reader every viewer reads for itself.
    before = _commands(client)
    _refresh(DashboardData(client, data.keys, clock=lambda: NOW), 10)
    assert _commands(client) - before >= 10 * spent[1] // 2


def test_the_shared_reader_reads_again_on_the_next_tick_and_never_caches_failures(store):
    data, client, _ = store
    now = [NOW]
    shared = DashboardData(client, data.keys, clock=lambda: now[0], cache_s=2.0)
    first = shared.live()
    assert shared.live() is first and {c.camera_id for c in first.cameras} >= {"cam-a", "cam-b"}
    now[0] += 2.0
    assert shared.live() is not first
    calls = []

    def failing():
        calls.append(1)
        raise DataUnavailable("down")

    for _ in range(2):
        with pytest.raises(DataUnavailable):
            shared.shared("flaky", failing)
    assert len(calls) == 2


def test_the_shared_reader_rereads_only_unsettled_seconds_and_agrees_with_a_full_read(store):
    data, client, _ = store
    now = [NOW - 30]
    shared = DashboardData(client, data.keys, clock=lambda: now[0], cache_s=2.0)
    first = shared.live()
    cam_a = next(c for c in first.cameras if c.camera_id == "cam-a")
    key = (cam_a.session_id, NOW - 120, cam_a.min_people)
    span = range(0, int(cam_a.offset_s) + 1)
    # After one tick all but the last SETTLE_S seconds of the session are kept.
    assert shared._settled.first_unread("cam-a", key, span) == span.stop - SETTLE_S
    now[0] = NOW  # the next ticks: reading only the rest gives what a full read gives
    for _ in range(2):
        now[0] += 2.0
        full = DashboardData(client, data.keys, clock=lambda: now[0]).live()
        assert shared.live().series == full.series and full.series["cam-a"]


def test_settled_seconds_keep_only_what_no_longer_moves():
    settled = SettledSeconds(settle_s=10)
    span = range(0, 50)
    assert settled.first_unread("c", "k", span) == 0
    items = settled.merge("c", "k", span, [(t, f"p{t}") for t in span])
    assert [t for t, _ in items] == list(span)
    assert settled.first_unread("c", "k", range(5, 60)) == 40  # seconds 0..39 are kept
    items = settled.merge("c", "k", range(5, 60), [(t, f"q{t}") for t in range(40, 60)])
    assert [t for t, _ in items] == list(range(5, 60)) and items[-20][1] == "q40"
    assert settled.first_unread("c", "other session", range(5, 60)) == 5
    assert settled.first_unread("c", "k", range(0, 60)) == 0  # reaches further back: all
    settled.retain(["d"])
    assert settled.first_unread("c", "k", range(5, 60)) == 5
