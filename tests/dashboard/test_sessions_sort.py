"""The Sessions page's column sorts (DashboardData.sorted_page) on a real Valkey filled by the
aggregator's own apply code: every sort's order equals the one computed straight from the
aggregator's keys, within the filters, paged; the scan cap sorts the newest sessions of the
range and says so; a closed session's row is read once, an open one every tick."""

from __future__ import annotations

import time

import pytest

from dashboard.data import DashboardData, SessionFilter
from dashboard.sessions_data import COLUMN_SORTS, sort_note
from moodstream.redis_keys import RedisKeys
from tests.conftest import redis_namespace
from tests.dashboard.redis_fill import Filler

pytestmark = pytest.mark.integration
NOW = time.time()
DAY = 86400
# (camera, session, started, seconds, mood from, mood to, people, ended, min_people); all
# within the Filler's 7-day summary TTL, or the aggregator's housekeeping prunes them.
SESSIONS = [
    ("cam-a", "s0", NOW - 6 * DAY, 20, 0.6, 0.6, 2, True, None),
    ("cam-a", "s1", NOW - 5 * DAY, 40, -0.7, -0.5, 1, True, None),
    ("cam-b", "s2", NOW - 4 * DAY, 10, 0.1, 0.1, 3, True, None),
    ("cam-b", "s3", NOW - 3 * DAY, 30, -0.2, -0.2, 2, True, 3),  # too few people: no mean
    ("cam-c", "s4", NOW - 2 * DAY, 60, 0.9, 0.8, 2, True, None),
    ("cam-a", "s5", NOW - DAY, 6, 0.0, 0.0, 0, True, None),  # no faces: no mean
    ("cam-b", "s6", NOW - 100, 90, -0.9, -0.8, 1, False, None),  # open
    ("cam-c", "s7", NOW - 50, 45, 0.3, 0.4, 2, False, None),  # open
]
OPEN = 2


@pytest.fixture(scope="module")
def filled(redis_server):
    with redis_namespace(redis_server, 12) as (client, prefix, _url):
        filler = Filler(client, prefix)
        for camera, session, started, seconds, start, end, people, ended, floor in SESSIONS:
            filler.session(camera, session, started, seconds, start, end, people=people,
                           end=ended, min_people=floor)
        yield client, RedisKeys(prefix)


def from_redis(client, keys: RedisKeys, session: str) -> dict:
    """A session's columns computed straight from the aggregator's keys."""
    meta, totals = client.hgetall(keys.meta(session)), client.hgetall(keys.totals(session))
    faces, floor = int(float(totals.get("faces", 0))), int(meta.get("min_people") or 1)
    hidden = client.scard(keys.tracks(session)) < floor
    end = float(meta.get("ended_at") or meta["last_seen"])
    return {"id": session, "camera": meta["camera_id"], "started": float(meta["started_at"]),
            "sentiment": None if not faces or hidden else float(totals["sentiment_sum"]) / faces,
            "faces": faces, "frames": int(float(totals["frames"])),
            "duration": end - float(meta["started_at"])}


def expected_order(columns: list[dict], sort: str) -> list[str]:
    """Rows without the value last, ties newest first: the page's rule, written out."""
    column, descending = sort.split("-")
    rows = sorted(columns, key=lambda c: -c["started"])
    with_value = [c for c in rows if c[column] is not None]
    with_value.sort(key=lambda c: -c[column] if descending == "desc" else c[column])
    return [c["id"] for c in with_value] + [c["id"] for c in rows if c[column] is None]


def ids(rows) -> list[str]:
    return [row.session_id for row in rows]


@pytest.mark.parametrize("sort", list(COLUMN_SORTS))
def test_every_column_sort_matches_redis_and_pages_through(filled, sort):
    client, keys = filled
    data = DashboardData(client, keys, clock=lambda: NOW)
    columns = [from_redis(client, keys, s[1]) for s in SESSIONS]
    everything = data.sorted_page(SessionFilter(), sort, 0, 100, scan=100)
    assert ids(everything.rows) == expected_order(columns, sort)
    assert (everything.matched, everything.window, everything.in_range) == (8, 8, 8)
    assert not everything.capped and not everything.more
    pages = [data.sorted_page(SessionFilter(), sort, page, 3, scan=100) for page in range(3)]
    assert [p.more for p in pages] == [True, True, False]
    assert sum((ids(p.rows) for p in pages), []) == ids(everything.rows)


def test_the_lowest_sentiment_comes_first_and_hidden_means_last(filled):
    client, keys = filled
    rows = DashboardData(client, keys).sorted_page(SessionFilter(), "sentiment-asc", 0, 100,
                                                   scan=100).rows
    assert ids(rows)[:2] == ["s6", "s1"]  # the two sour sessions, the worst first
    assert ids(rows)[-2:] == ["s5", "s3"]  # no faces / too few people: no mean, newest first
    means = [row.mean_sentiment for row in rows[:-2]]
    assert means == sorted(means) and rows[-1].mean_sentiment is None


def test_the_sort_stays_within_the_filters(filled):
    client, keys = filled
    data = DashboardData(client, keys)
    columns = {s[1]: from_redis(client, keys, s[1]) for s in SESSIONS}
    cam_b = data.sorted_page(SessionFilter(camera_id="cam-b"), "faces-desc", 0, 100, scan=100)
    assert ids(cam_b.rows) == expected_order(
        [c for c in columns.values() if c["camera"] == "cam-b"], "faces-desc")
    dated = data.sorted_page(SessionFilter(start_ts=NOW - 4.5 * DAY, end_ts=NOW - 1.5 * DAY),
                             "duration-desc", 0, 100, scan=100)
    assert ids(dated.rows) == ["s4", "s3", "s2"] and dated.in_range == 3
    happy = data.sorted_page(SessionFilter(min_sentiment=0.0, max_sentiment=0.9),
                             "sentiment-desc", 0, 100, scan=100)
    assert ids(happy.rows) == expected_order(
        [c for c in columns.values() if c["sentiment"] is not None
         and 0.0 <= c["sentiment"] <= 0.9], "sentiment-desc")
    assert all(0.0 <= row.mean_sentiment <= 0.9 for row in happy.rows)


def test_the_scan_cap_sorts_the_newest_and_says_so(filled):
    client, keys = filled
    data = DashboardData(client, keys)
    newest = client.zrevrange(keys.sessions, 0, 3)
    capped = data.sorted_page(SessionFilter(), "frames-desc", 0, 100, scan=4)
    assert set(ids(capped.rows)) == set(newest) == {"s4", "s5", "s6", "s7"}
    assert capped.capped and (capped.window, capped.in_range) == (4, 8)
    assert sort_note(capped, "frames-desc") == (
        "Most frames first, sorted among the newest 4 of all 8 sessions: pick dates to sort "
        "them all.")
    dated = data.sorted_page(SessionFilter(start_ts=NOW - 5.5 * DAY), "frames-desc", 0, 100,
                             scan=2)
    assert ids(dated.rows) == ["s6", "s7"] and (dated.window, dated.in_range) == (2, 7)
    assert sort_note(dated, "frames-desc") == (
        "Most frames first, sorted among the newest 2 of the 7 sessions of these dates: "
        "narrow the dates to sort them all.")
    whole = data.sorted_page(SessionFilter(), "frames-desc", 0, 100, scan=8)
    assert not whole.capped
    assert sort_note(whole, "frames-desc") == "Most frames first, among all 8 matching sessions."


def hmgets(client) -> int:
    return client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)


def test_closed_rows_are_read_once_open_ones_every_tick(filled):
    client, keys = filled
    data = DashboardData(client, keys)  # no shared cache: every call reads Redis
    before = hmgets(client)
    first = data.sorted_page(SessionFilter(), "faces-asc", 0, 100, scan=100)
    assert hmgets(client) - before == 2 * len(SESSIONS)  # meta and totals of every row
    before = hmgets(client)
    again = data.sorted_page(SessionFilter(), "sentiment-desc", 0, 100, scan=100)
    assert hmgets(client) - before == 2 * OPEN  # only the open sessions again
    assert {row.session_id: row for row in again.rows} == \
        {row.session_id: row for row in first.rows}


def test_viewers_of_one_tick_share_one_read(filled):
    client, keys = filled
    data = DashboardData(client, keys, clock=lambda: NOW, cache_s=2.0)
    first = data.sorted_page(SessionFilter(), "duration-asc", 1, 3, scan=100)
    before = hmgets(client)
    for _viewer in range(4):
        assert data.sorted_page(SessionFilter(), "duration-asc", 1, 3, scan=100) == first
    assert hmgets(client) == before


@pytest.mark.parametrize("status", ["open", "closed"])
def test_status_filter_on_both_orders(filled, status):
    """Rows of a status are the sessions whose meta has it, by start time and sorted."""
    client, keys = filled
    data = DashboardData(client, keys, clock=lambda: NOW)
    want = [s[1] for s in sorted(SESSIONS, key=lambda s: -s[2])
            if client.hget(keys.meta(s[1]), "status") == status]
    assert len(want) == (OPEN if status == "open" else len(SESSIONS) - OPEN)
    flt = SessionFilter(status=status)
    assert ids(data.sessions(flt, limit=100, scan=100)) == want
    sorted_rows = data.sorted_page(flt, "faces-desc", 0, 100, scan=100).rows
    assert sorted(ids(sorted_rows)) == sorted(want)
