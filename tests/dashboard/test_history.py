"""History: ranges, the weekday x hour grid and the figure builders (pure), and the data
layer on a real Valkey holding rollups written by the aggregator's own code: the view
equals the rollup keys, and viewers share one set of Redis reads per tick."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone

import numpy as np
import plotly.io.json
import pytest
import redis

from dashboard.data import DashboardData, DataUnavailable
from dashboard.history_data import (F, SITE, HistoryData, HistoryRange, RangeError,
                                    resolve_range, weekly_grid)
from dashboard.history_data import figures_for, summary_line
from moodstream import history_figures as hf
from moodstream.embedded import free_port
from moodstream.redis_keys import ROLLUP_FIELDS, RedisKeys, parse_rollup
from moodstream.rollups import DAY_S, HOUR_S, hour_of
from tests.dashboard.history_fill import PAST_HOURS, row, seed_history

# Monday 2026-11-30 10:20 UTC
NOW = datetime(2026, 11, 30, 10, 20, tzinfo=timezone.utc).timestamp()
TODAY = int(datetime(2026, 11, 30, tzinfo=timezone.utc).timestamp())


# ---------------------------------------------------------------- pure

def test_ranges_are_utc_hours_and_days():
    assert resolve_range("hour", NOW) == HistoryRange("hour", TODAY + 9 * HOUR_S, TODAY + 11 * HOUR_S)
    assert resolve_range("today", NOW) == HistoryRange("today", TODAY, TODAY + 11 * HOUR_S)
    week = resolve_range("7d", NOW)
    assert week.start == TODAY - 6 * DAY_S and week.by_day and len(week.days) == 7
    assert len(resolve_range("30d", NOW).days) == 30
    custom = resolve_range("custom", NOW, "2026-11-01", "2026-11-02")
    assert (custom.start, custom.end) == (TODAY - 29 * DAY_S, TODAY - 27 * DAY_S)
    assert len(custom.hours) == 48
    for bad, why in ((("2026-11-02", "2026-11-01"), "before"), ((None, "2026-11-01"), "pick"),
                     (("2025-01-01", "2026-11-01"), "at most"), (("nope", "2026-11-01"), "pick")):
        with pytest.raises(RangeError, match=why):
            resolve_range("custom", NOW, *bad)
    with pytest.raises(RangeError):
        resolve_range("forever", NOW)


def test_weekly_grid_puts_each_hour_in_its_weekday_and_hour():
    monday_10, sunday_23 = TODAY + 10 * HOUR_S, TODAY - HOUR_S
    rows = np.array([row(faces=4, sentiment_sum=2.0, people=3),
                     row(faces=2, sentiment_sum=-2.0, people=5),
                     row(faces=0, sentiment_sum=0.0, people=0)])
    sentiment, traffic = weekly_grid([monday_10, sunday_23, monday_10 - 7 * DAY_S], rows)
    assert sentiment.shape == traffic.shape == (7, 24)
    assert sentiment[0, 10] == pytest.approx(0.5)  # (2 + 0) / (4 + 0) faces
    assert traffic[0, 10] == pytest.approx(1.5)  # 3 people in one of two Monday-10 hours
    assert sentiment[6, 23] == pytest.approx(-1.0) and traffic[6, 23] == 5
    assert np.isnan(sentiment[3, 3]) and np.isnan(traffic[3, 3])  # not in the range


def test_figure_builders_are_pure_and_honest_about_gaps():
    hours = [datetime(2026, 11, 30, h) for h in range(3)]
    fig = hf.history_trend(hours, {"cam-a": ([0.5, None, -0.2], [3, 0, 1]),
                                   "cam-b": ([0.1, 0.2, 0.3], [1, 1, 1])}, theme="dark")
    assert [t["name"] for t in fig["data"]] == ["cam-a", "cam-a", "cam-b", "cam-b"]
    assert np.isnan(fig["data"][0]["y"][1])  # an hour without faces is a gap, not a zero
    assert fig["data"][0]["line"]["color"] != fig["data"][2]["line"]["color"]
    assert fig["layout"]["template"]["layout"]["paper_bgcolor"] != \
        hf.history_trend(hours, {"a": ([0.1] * 3, [1] * 3)})["layout"]["template"]["layout"][
            "paper_bgcolor"]  # dark and light templates
    empty = hf.history_trend(hours, {SITE: ([None] * 3, [0, 0, 0])})
    assert empty["data"] == [] and empty["layout"]["annotations"][0]["text"] == hf.EMPTY
    grid = np.full((7, 24), np.nan)
    grid[0, 10] = 0.4
    heat = hf.weekly_heatmap(grid, "s", "sentiment")["data"][0]
    assert (heat["zmin"], heat["zmax"], heat["zmid"]) == (-1, 1, 0)
    assert heat["y"] == list(hf.WEEKDAYS) and heat["z"][0][10] == 0.4
    assert hf.weekly_heatmap(np.full((7, 24), np.nan), "t", "traffic")["data"] == []
    bars = hf.camera_comparison([("b", 0.3, 10), ("a", -0.5, 4), ("c", None, 0)])["data"][0]
    assert bars["y"] == ["a", "b", "c"]  # most negative first, no faces last
    assert bars["text"] == ["4 people", "10 people", "0 people"]
    # Plain JSON for the browser: what dcc.Graph is sent.
    assert json.loads(plotly.io.json.to_json_plotly(bars))["x"][:2] == [-0.5, 0.3]


def test_figures_for_a_view():
    rng = HistoryRange("hour", TODAY + 9 * HOUR_S, TODAY + 11 * HOUR_S)
    from dashboard.history_data import HistoryView
    view = HistoryView(rng, {SITE: np.array([row(), row(faces=0, sentiment_sum=0, people=0)])},
                       {"cam-a": np.array([row()]), "cam-b": np.array([row(frames=0)])})
    summary, trend, heat_s, heat_t, compare = figures_for(view, "light")
    assert summary == ("2026-11-30 09:00 – 2026-11-30 10:59 UTC · 20 frames · 4 faces · "
                       "3 people (counted per hour) · mean sentiment +0.50")
    assert trend["data"][0]["y"][0] == 0.5 and np.isnan(trend["data"][0]["y"][1])
    assert compare["data"][0]["y"] == ["cam-a"]  # cam-b had no frames in the range


def test_min_people_hides_the_sentiment_of_hours_with_fewer_people():
    """cam-a asks 3 people: its 2-people hour shows no sentiment and adds none to the
    heatmap, the comparison or the mean; every count stays."""
    rng = HistoryRange("hour", TODAY + 9 * HOUR_S, TODAY + 11 * HOUR_S)
    from dashboard.history_data import HistoryView
    few, many = row(faces=4, sentiment_sum=-3.6, people=2), row(faces=6, sentiment_sum=3.0,
                                                               people=4)
    view = HistoryView(rng, {"cam-a": np.array([few, many])},
                       {"cam-a": np.array([few, many]), "cam-b": np.array([few])},
                       floors={"cam-a": 3, "cam-b": 1})
    summary, trend, heat_s, heat_t, compare = figures_for(view, "light")
    assert summary == ("2026-11-30 09:00 – 2026-11-30 10:59 UTC · 20 frames · 10 faces · "
                       "6 people (counted per hour) · mean sentiment +0.50 · sentiment "
                       "hidden in 1 h (fewer than 3 people)")
    sentiment, people = trend["data"][0]["y"], trend["data"][1]["y"]
    assert np.isnan(sentiment[0]) and sentiment[1] == 0.5 and list(people) == [2, 4]
    assert np.isnan(heat_s["data"][0]["z"][0][9]) and heat_s["data"][0]["z"][0][10] == 0.5
    assert heat_t["data"][0]["z"][0][9] == 2  # traffic is a count: shown
    bars = compare["data"][0]
    assert dict(zip(bars["y"], bars["x"])) == {"cam-a": 0.5, "cam-b": -0.9}  # cam-b: floor 1
    alone = HistoryView(rng, {"cam-a": np.array([few])}, {}, floors={"cam-a": 3})
    assert summary_line(alone).endswith("4 faces · 2 people (counted per hour) · mean "
                                        "sentiment — · sentiment hidden in 1 h (fewer than "
                                        "3 people)")


# ---------------------------------------------------------------- real Valkey

@pytest.fixture(scope="module")
def rolled(redis_server):
    prefix = f"h{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=12,
                         decode_responses=True)
    try:
        yield client, seed_history(client, prefix)
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


def rollup_rows(client, key: str, hours: list[int]) -> np.ndarray:
    return np.array([parse_rollup(v) or [0.0] * len(ROLLUP_FIELDS)
                     for v in client.hmget(key, hours)])


def test_view_equals_the_rollups_in_redis(rolled):
    client, keys = rolled
    history = HistoryData(DashboardData(client, keys))
    assert history.cameras() == ["cam-a", "cam-b", "cam-c"]
    today = resolve_range("today", time.time())
    site = history.view(today).series[SITE]
    per_camera = sum(rollup_rows(client, keys.rollup_hourly(c), today.hours)
                     for c in ("cam-a", "cam-b", "cam-c"))
    assert site == pytest.approx(per_camera)
    # The live sessions' seconds are all in: the site counts every face they had.
    faces = sum(float(client.hget(keys.totals(s), "faces") or 0)
                for s in ("sess-a1", "sess-b1"))
    hour_rows = history.view(resolve_range("hour", time.time())).series[SITE]
    assert hour_rows[:, F["faces"]].sum() >= faces > 0
    month = resolve_range("30d", time.time())
    view = history.view(month, ("cam-c", "cam-a"))
    assert list(view.series) == ["cam-c", "cam-a"]
    assert view.series["cam-c"] == pytest.approx(
        rollup_rows(client, keys.rollup_hourly("cam-c"), month.hours))
    for camera, days in view.comparison.items():  # compared by day over 30 days
        assert days == pytest.approx(
            rollup_rows(client, keys.rollup_daily(camera), month.days))
    in_range = [h for h in PAST_HOURS if hour_of(time.time()) - h * HOUR_S >= month.start]
    assert view.comparison["cam-c"][:, F["frames"]].sum() == 100 * len(in_range)


def test_a_cameras_min_people_hides_its_hours_of_fewer_people(rolled):
    client, keys = rolled
    client.hset(keys.camera_live("cam-c"), "min_people", 3)  # as the aggregator records it
    try:
        month = resolve_range("30d", time.time())
        view = HistoryData(DashboardData(client, keys)).view(month, ("cam-c",))
        assert view.floors["cam-c"] == 3 and view.floors[SITE] == 3
        rows = rollup_rows(client, keys.rollup_hourly("cam-c"), month.hours)
        few = (rows[:, F["faces"]] > 0) & (rows[:, F["people"]] < 3)
        shown = (rows[:, F["faces"]] > 0) & ~few
        assert few.any() and shown.any()  # the seeded hours hold 1 to 4 people
        summary, trend, *_heat, compare = figures_for(view, "light")
        sentiment = np.asarray(trend["data"][0]["y"], dtype=float)
        assert np.isnan(sentiment[few]).all() and not np.isnan(sentiment[shown]).any()
        mean = rows[shown, F["sentiment_sum"]].sum() / rows[shown, F["faces"]].sum()
        assert f"mean sentiment {mean:+.2f} · sentiment hidden in {few.sum()} h" in summary
        assert f"{int(rows[:, F['faces']].sum()):,} faces" in summary  # counts stay
        days = rollup_rows(client, keys.rollup_daily("cam-c"), month.days)
        rated_days = (days[:, F["people"]] >= 3)
        bars = dict(zip(compare["data"][0]["y"], compare["data"][0]["x"]))
        assert bars["cam-c"] == pytest.approx(days[rated_days, F["sentiment_sum"]].sum()
                                              / days[rated_days, F["faces"]].sum())
    finally:
        client.delete(keys.camera_live("cam-c"))


def _commands(client) -> int:
    return sum(stat["calls"] for name, stat in client.info("commandstats").items()
               if name != "cmdstat_info")


def test_viewers_share_one_read_per_tick(rolled):
    client, keys = rolled
    spent = {}
    for viewers in (1, 5):
        history = HistoryData(DashboardData(client, keys, clock=lambda: NOW, cache_s=2.0))
        month = resolve_range("30d", time.time())
        before = _commands(client)
        threads = [threading.Thread(target=lambda: (history.cameras(), history.view(month)))
                   for _ in range(viewers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        spent[viewers] = _commands(client) - before
    assert spent[1] == spent[5] > 0


def test_unreachable_redis_is_data_unavailable():
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, decode_responses=True)
    history = HistoryData(DashboardData(dead, RedisKeys("x")))
    with pytest.raises(DataUnavailable):
        history.view(resolve_range("today", NOW))
