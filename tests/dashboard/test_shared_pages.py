"""The sessions and session pages through the real app (its HTTP callback endpoint, as the
browser and benchmarks/dashboard_bench call it) on a real Valkey: Redis commands per refresh
do not grow with viewers, and the sessions list reads only the page it shows."""

from __future__ import annotations

import time

import pytest
import redis

from benchmarks.dashboard_bench import Pages, commands
from dashboard.callbacks import SESSIONS_PAGE_SIZE as PAGE_SIZE
from dashboard.data import DashboardData, SessionFilter
from moodstream.redis_keys import RedisKeys
from tests.dashboard.redis_fill import Filler
from tests.conftest import redis_namespace

pytestmark = pytest.mark.integration
NOW = time.time()
SESSIONS = PAGE_SIZE + 10  # two pages


@pytest.fixture(scope="module")
def seeded(redis_server):
    with redis_namespace(redis_server, 13) as (client, prefix, _url):
        filler = Filler(client, prefix)
        for n in range(SESSIONS - 1):  # short closed sessions, one a minute
            filler.session(f"cam-{n % 3}", f"old-{n:03d}", NOW - 86400 + 60 * n, 2,
                           0.5 if n % 2 else -0.5, 0.5 if n % 2 else -0.5, end=True)
        filler.session("cam-0", "live-0", NOW - 60, 60, 0.2, 0.4)
        yield client, RedisKeys(prefix)


@pytest.fixture
def pages(seeded):
    client, keys = seeded
    return Pages(client, keys, NOW)


def _spent(pages: Pages, client: redis.Redis, calls: list, viewers: int) -> int:
    """Commands of one refresh tick of `viewers` viewers."""
    pages.now += 2.0  # a new tick: the shared reader reads again
    before = commands(client)
    for _viewer in range(viewers):
        for output_id, values in calls:
            pages.call(output_id, values)
    return commands(client) - before  # (commands() leaves INFO out)


SESSIONS_PAGE = [("sessions-table", {"tick.n_intervals": 1})]
SESSIONS_FILTERED = [("sessions-table", {"tick.n_intervals": 1, "filter-camera.value": "cam-1",
                                         "filter-min.value": 0.1, "sessions-page-no.data": 1})]
LIVE_SESSION = [("session-title", {"tick.n_intervals": 1, "url.pathname": "/session/live-0"})]
CLOSED_SESSION = [("session-title", {"tick.n_intervals": 1,
                                     "url.pathname": "/session/old-007"})]


@pytest.mark.parametrize("calls", [SESSIONS_PAGE, SESSIONS_FILTERED, LIVE_SESSION],
                         ids=["sessions", "sessions-filtered-page-2", "live-session"])
def test_commands_per_refresh_are_the_same_for_1_and_5_viewers(seeded, pages, calls):
    client, _keys = seeded
    _spent(pages, client, calls, 1)  # warm-up: script loading, first imports
    one, five = _spent(pages, client, calls, 1), _spent(pages, client, calls, 5)
    assert one == five > 0


def test_a_closed_session_is_read_once_then_kept(seeded, pages):
    client, _keys = seeded
    assert _spent(pages, client, CLOSED_SESSION, 1) > 0
    assert _spent(pages, client, CLOSED_SESSION, 5) == 0  # its data no longer changes


def test_the_sessions_page_reads_only_the_rows_it_shows(seeded):
    client, keys = seeded
    data = DashboardData(client, keys, clock=lambda: NOW, cache_s=2.0)
    first, more = data.sessions_page(SessionFilter(), 0, PAGE_SIZE, scan=1000)
    assert more and len(first) == PAGE_SIZE and first[0].session_id == "live-0"
    before = commands(client)
    second, more = data.sessions_page(SessionFilter(), 1, PAGE_SIZE, scan=1000)
    # one ZREVRANGEBYSCORE, two HMGETs a row: nothing of the first page is read again
    assert commands(client) - before == 1 + 2 * len(second)
    assert not more and len(second) == SESSIONS - PAGE_SIZE
    assert {r.session_id for r in first}.isdisjoint(r.session_id for r in second)
    newest_first = [r.started_at for r in first + second]
    assert newest_first == sorted(newest_first, reverse=True)


def test_a_filtered_page_skips_the_rows_of_the_pages_before(seeded):
    client, keys = seeded
    data = DashboardData(client, keys, clock=lambda: NOW)
    happy = SessionFilter(min_sentiment=0.1)
    every = data.sessions(happy, limit=SESSIONS)
    assert every and all(r.mean_sentiment >= 0.1 for r in every)
    assert data.sessions(happy, limit=5, offset=5) == every[5:10]
    assert data.sessions(happy, limit=5, offset=5, scan=5) == []  # the scan bound holds


def test_the_shared_cache_stays_bounded(seeded, monkeypatch):
    client, keys = seeded
    monkeypatch.setattr("dashboard.data.SHARED_NAMES", 4)
    now = [NOW]
    data = DashboardData(client, keys, clock=lambda: now[0], cache_s=2.0)
    for n in range(3):
        data.shared(f"old-{n}", lambda: n)
    now[0] += 2.0
    for n in range(3):
        data.shared(f"new-{n}", lambda: n)
    assert len(data._cache) == 4 and {"new-0", "new-1", "new-2"} <= set(data._cache)
