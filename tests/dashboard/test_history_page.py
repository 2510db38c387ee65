"""The History page in headless Chromium at 1366x768 and 1920x1080, served by `python -m
dashboard` against a real Valkey whose rollups the aggregator's own code wrote: the summary
equals the site rollups in Redis for each range, every chart is drawn, the camera picker
and the custom range work, no console errors; screenshots kept as test artefacts."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from dashboard.history_data import F, resolve_range
from moodstream.redis_keys import ROLLUP_FIELDS, parse_rollup
from tests.dashboard.conftest import dashboard_process
from tests.dashboard.history_fill import seed_history
from tests.dashboard.test_browser import assert_console_clean, plot_data, text_of, wait_until
from tests.dashboard.test_pages import screenshot, viewport
from tests.conftest import redis_namespace

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def history_site(redis_server):
    with redis_namespace(redis_server, 11) as (client, prefix, url):
        keys = seed_history(client, prefix)
        env = dict(os.environ, REDIS_URL=url, MOODSTREAM_REDIS_PREFIX=prefix, PYTHONUNBUFFERED="1")
        with dashboard_process(env) as (base, _proc):
            yield base, client, keys


def expected_summary(client, key: str, range_key: str, *dates) -> str:
    """'N frames · N faces · N people' straight from the rollup hash, not the page's code."""
    rng = resolve_range(range_key, time.time(), *dates)
    rows = [parse_rollup(v) or [0.0] * len(ROLLUP_FIELDS) for v in client.hmget(key, rng.hours)]
    total = np.sum(rows, axis=0)
    return (f"{int(total[F['frames']]):,} frames · {int(total[F['faces']]):,} faces · "
            f"{int(total[F['people']]):,} people")


def cameras_with_frames(client, keys, range_key: str) -> list[str]:
    """The cameras whose hourly rollups hold frames in the range, read from Redis: which
    ones depends on the hour the test runs (cam-c's past rollups start 3 h ago)."""
    rng = resolve_range(range_key, time.time())
    frames = ROLLUP_FIELDS.index("frames")
    return sorted(c for c in ("cam-a", "cam-b", "cam-c")
                  if any((parse_rollup(v) or [0.0] * len(ROLLUP_FIELDS))[frames] > 0
                         for v in client.hmget(keys.rollup_hourly(c), rng.hours)))


def wait_for_summary(driver, want: str, what: str) -> None:
    try:
        wait_until(driver, lambda d: want in text_of(d, "#history-summary"), what)
    except Exception:
        raise AssertionError(f"{what}: wanted {want!r} in "
                             f"{text_of(driver, '#history-summary')!r}; console: "
                             f"{driver.get_log('browser')}; page: {text_of(driver, 'body')[:600]!r}") from None


def choose_range(driver, value: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#history-range input[value='{value}']").click()


@pytest.mark.parametrize("size", ["1366x768", "1920x1080"])
def test_history_page(browser, history_site, size):
    base, client, keys = history_site
    site = keys.rollup_site("hourly")
    viewport(browser, size)
    browser.get_log("browser")
    browser.get(base + "/history")
    want = expected_summary(client, site, "today")
    wait_for_summary(browser, want, "today's summary")
    wait_until(browser, lambda d: len(plot_data(d, "history-trend")) == 2, "trend")
    assert "mean sentiment" in text_of(browser, "#history-summary")
    compared = plot_data(browser, "history-compare")
    today = cameras_with_frames(client, keys, "today")
    assert today and sorted(compared[0]["y"]) == today

    choose_range(browser, "30d")
    want = expected_summary(client, site, "30d")
    wait_for_summary(browser, want, "30-day summary")
    heat = browser.execute_script(
        "return document.querySelector('#history-heat-traffic .js-plotly-plot')._fullData[0]"
        ".z.map(r => Array.from(r)).flat().filter(v => v !== null && !Number.isNaN(v)).length")
    assert heat > 7 * 24 // 2  # the 30 days fill most weekday x hour cells
    assert browser.execute_script("return document.documentElement.scrollWidth") <= \
        int(size.split("x")[0])
    screenshot(browser, f"history-{size}")

    # One camera picked: its own line and numbers.
    browser.find_element(By.ID, "history-cameras").click()  # dcc.Dropdown: a listbox button
    option = wait_until(browser, lambda d: next((o for o in d.find_elements(
        By.CSS_SELECTOR, "[role='option']") if o.text.strip() == "cam-c"), None), "cam-c option")
    option.click()
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    want = expected_summary(client, keys.rollup_hourly("cam-c"), "30d")
    wait_for_summary(browser, want, "cam-c's summary")
    assert [t["name"] for t in plot_data(browser, "history-trend")] == ["cam-c", "cam-c"]

    # A custom range of two past days, typed into the date picker.
    rng = resolve_range("30d", time.time())
    first = time.strftime("%Y-%m-%d", time.gmtime(rng.start + 3 * 86400))
    last = time.strftime("%Y-%m-%d", time.gmtime(rng.start + 4 * 86400))
    choose_range(browser, "custom")
    wait_until(browser, lambda d: d.find_element(By.ID, "history-start").is_enabled(), "dates on")
    for box, day in (("history-start", first), ("history-end", last)):
        field = browser.find_element(By.ID, box)
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(day, Keys.TAB)
    want = expected_summary(client, keys.rollup_hourly("cam-c"), "custom", first, last)
    wait_for_summary(browser, f"{first} 00:00 – {last} 23:59 UTC · {want}", "custom range")

    font = ("return document.querySelector('#history-heat-sentiment .js-plotly-plot')"
            "._fullLayout.font.color")
    light = browser.execute_script(font)
    browser.execute_script("document.querySelector('#theme-switch').click()")
    wait_until(browser, lambda d: d.execute_script(font) != light, "charts in the dark template")
    screenshot(browser, f"history-dark-{size}")
    browser.execute_script("document.querySelector('#theme-switch').click()")  # back to light
    assert_console_clean(browser)


def test_history_hides_the_sentiment_of_hours_with_fewer_people_than_min_people(
        browser, history_site):
    base, client, keys = history_site
    client.hset(keys.camera_live("cam-c"), "min_people", 3)  # as the aggregator records it
    try:
        viewport(browser, "1366x768")
        browser.get_log("browser")
        browser.get(base + "/history")
        wait_for_summary(browser, "mean sentiment", "the page")
        choose_range(browser, "30d")
        browser.find_element(By.ID, "history-cameras").click()
        option = wait_until(browser, lambda d: next((o for o in d.find_elements(
            By.CSS_SELECTOR, "[role='option']") if o.text.strip() == "cam-c"), None), "cam-c")
        option.click()
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        rng = resolve_range("30d", time.time())
        rows = np.array([parse_rollup(v) or [0.0] * len(ROLLUP_FIELDS)
                         for v in client.hmget(keys.rollup_hourly("cam-c"), rng.hours)])
        few = (rows[:, F["faces"]] > 0) & (rows[:, F["people"]] < 3)
        assert few.any()
        want = (f"{expected_summary(client, keys.rollup_hourly('cam-c'), '30d')} (counted "
                f"per hour)")
        wait_for_summary(browser, f"sentiment hidden in {few.sum()} h (fewer than 3 people)",
                         "the hidden hours")
        assert want in text_of(browser, "#history-summary")  # the counts stay
        sentiment = np.array([np.nan if y is None else y
                              for y in plot_data(browser, "history-trend")[0]["y"]], dtype=float)
        shown = (rows[:, F["faces"]] > 0) & ~few
        assert np.isnan(sentiment[few]).all() and not np.isnan(sentiment[shown]).any()
        assert_console_clean(browser)
    finally:
        client.delete(keys.camera_live("cam-c"))
