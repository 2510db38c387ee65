"""The Sessions page's server-side pager and order in headless Chromium at 1366×768 and
1920×1080, served by `python -m dashboard` against a real Valkey filled by the aggregator's
own apply code with more sessions than one page holds: each page's rows, in order, are the
sessions index's (read straight from Redis), newer/older buttons enable and disable at the
ends, and "Oldest first" turns the order around from page 1. Sorted by lowest mean sentiment,
each page's rows are those of the order computed from each session's totals in Redis. The
status filter shows the sessions whose meta in Redis has that status."""

from __future__ import annotations

import os
import time

import pytest
from selenium.webdriver.common.by import By

from dashboard.callbacks import SESSIONS_PAGE_SIZE as PAGE
from moodstream.redis_keys import RedisKeys
from tests.conftest import redis_namespace
from tests.dashboard.conftest import dashboard_process
from tests.dashboard.redis_fill import Filler
from tests.dashboard.test_browser import assert_console_clean, text_of, wait_until
from tests.dashboard.test_pages import screenshot, viewport

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]
SESSIONS = PAGE + 12  # two pages: a full one and a short one
OPEN = 2  # the newest sessions are not closed yet


def mood(i: int) -> float:
    """Session i's mood in [-0.9, 0.9], the sessions' order by it unlike their start order."""
    return round((i * 37 % SESSIONS) / (SESSIONS - 1) * 1.8 - 0.9, 3)


@pytest.fixture(scope="module")
def many_sessions(redis_server):
    with redis_namespace(redis_server, 10) as (client, prefix, url):
        filler, now = Filler(client, prefix), time.time()
        for i in range(SESSIONS):  # an hour apart, on three cameras, each two seconds long
            filler.session(f"cam-{i % 3}", f"pg-{i:03d}", now - (SESSIONS - i) * 3600, 2,
                           mood(i), mood(i), end=i < SESSIONS - OPEN)  # the newest still open
        env = dict(os.environ, REDIS_URL=url, MOODSTREAM_REDIS_PREFIX=prefix,
                   PYTHONUNBUFFERED="1")
        with dashboard_process(env) as (base, _proc):
            yield base, client, RedisKeys(prefix)


def shown_ids(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#sessions tbody tr td:first-child'))"
        ".map(td => td.textContent.trim())")


def wait_for_page(driver, label: str, ids: list[str], what: str) -> None:
    wait_until(driver, lambda d: text_of(d, "#sessions-page-label") == label
               and shown_ids(d) == ids, what)


def press(driver, css: str) -> None:
    """Scroll the control into view and click it (a DOM click: with the emulated viewport,
    chromedriver computes click points off the window's own size)."""
    driver.execute_script("const el = document.querySelector(arguments[0]);"
                          "el.scrollIntoView({block: 'center'}); el.click();", css)


def choose_order(driver, label: str) -> None:
    driver.find_element(By.ID, "sessions-order").click()  # dcc.Dropdown: a listbox button
    wait_until(driver, lambda d: next((o for o in d.find_elements(
        By.CSS_SELECTOR, "[role='option']") if o.text.strip() == label), None), label).click()


def disabled(driver, button: str) -> bool:
    return driver.find_element(By.ID, button).get_attribute("disabled") is not None


@pytest.mark.parametrize("size", ["1366x768", "1920x1080"])
def test_pages_and_order_follow_the_sessions_index(browser, many_sessions, size):
    base, client, keys = many_sessions
    newest = client.zrevrange(keys.sessions, 0, -1)  # what the index holds, newest first
    assert len(newest) == SESSIONS
    viewport(browser, size)
    browser.get_log("browser")
    browser.get(base + "/sessions")
    wait_for_page(browser, f"page 1 · sessions 1–{PAGE}", newest[:PAGE], "page 1")
    assert disabled(browser, "sessions-prev") and not disabled(browser, "sessions-next")
    screenshot(browser, f"sessions-pager-{size}")

    press(browser, "#sessions-next")
    wait_for_page(browser, f"page 2 · sessions {PAGE + 1}–{SESSIONS}", newest[PAGE:], "page 2")
    wait_until(browser, lambda d: disabled(d, "sessions-next"), "the last page's next off")
    assert not disabled(browser, "sessions-prev")

    press(browser, "#sessions-prev")
    wait_for_page(browser, f"page 1 · sessions 1–{PAGE}", newest[:PAGE], "back to page 1")

    press(browser, "#sessions-next")  # then a new order: page 1 again
    wait_for_page(browser, f"page 2 · sessions {PAGE + 1}–{SESSIONS}", newest[PAGE:], "page 2")
    choose_order(browser, "Oldest first")
    oldest = client.zrange(keys.sessions, 0, -1)
    wait_for_page(browser, f"page 1 · sessions 1–{PAGE}", oldest[:PAGE], "oldest first")
    press(browser, "#sessions-next")
    wait_for_page(browser, f"page 2 · sessions {PAGE + 1}–{SESSIONS}", oldest[PAGE:],
                  "oldest first, page 2")
    started = [float(client.zscore(keys.sessions, s)) for s in oldest[PAGE:]]
    assert started == sorted(started)
    choose_order(browser, "Newest first")
    assert_console_clean(browser)


def lowest_sentiment_first(client, keys: RedisKeys) -> list[str]:
    """The index's sessions by mean sentiment (sentiment_sum / faces of their totals), the
    lowest first, ties newest first: computed from Redis, not by the dashboard's code."""
    newest = client.zrevrange(keys.sessions, 0, -1)
    means = {}
    for session in newest:
        totals = client.hmget(keys.totals(session), "sentiment_sum", "faces")
        means[session] = float(totals[0]) / float(totals[1])
    assert len(set(round(m, 4) for m in means.values())) == SESSIONS  # no ties to break
    return sorted(newest, key=means.__getitem__)


@pytest.mark.parametrize("size", ["1366x768", "1920x1080"])
def test_sorted_by_lowest_mean_sentiment_follows_redis(browser, many_sessions, size):
    base, client, keys = many_sessions
    expected = lowest_sentiment_first(client, keys)
    viewport(browser, size)
    browser.get_log("browser")
    browser.get(base + "/sessions")
    wait_for_page(browser, f"page 1 · sessions 1–{PAGE}", client.zrevrange(keys.sessions, 0,
                                                                          PAGE - 1), "page 1")
    choose_order(browser, "Lowest sentiment")
    wait_for_page(browser, f"page 1 · sessions 1–{PAGE}", expected[:PAGE], "sorted page 1")
    assert text_of(browser, "#sessions-sort-note") == \
        f"Lowest sentiment first, among all {SESSIONS} matching sessions."
    assert text_of(browser, "#sessions-next") == "Next →" and disabled(browser, "sessions-prev")
    shown = [float(v) for v in browser.execute_script(
        "return Array.from(document.querySelectorAll('#sessions tbody tr td:last-child'))"
        ".map(td => td.textContent.trim())")]
    assert shown == sorted(shown) and shown[0] < 0 < shown[-1]
    screenshot(browser, f"sessions-sorted-{size}")

    press(browser, "#sessions-next")
    wait_for_page(browser, f"page 2 · sessions {PAGE + 1}–{SESSIONS}", expected[PAGE:],
                  "sorted page 2")
    wait_until(browser, lambda d: disabled(d, "sessions-next"), "the last page's next off")
    choose_order(browser, "Newest first")  # back to the index's order, from page 1
    wait_for_page(browser, f"page 1 · sessions 1–{PAGE}", client.zrevrange(keys.sessions, 0,
                                                                          PAGE - 1), "newest")
    assert text_of(browser, "#sessions-sort-note") == ""
    assert_console_clean(browser)


def choose_status(driver, status: str) -> None:
    driver.find_element(By.ID, "filter-status").click()  # dcc.Dropdown: a listbox button
    wait_until(driver, lambda d: next((o for o in d.find_elements(
        By.CSS_SELECTOR, "[role='option']") if o.text.strip() == status), None), status).click()


@pytest.mark.parametrize("size", ["1366x768", "1920x1080"])
def test_status_filter_follows_the_sessions_meta(browser, many_sessions, size):
    base, client, keys = many_sessions
    newest = client.zrevrange(keys.sessions, 0, -1)
    status = {s: client.hget(keys.meta(s), "status") for s in newest}
    is_open = [s for s in newest if status[s] == "open"]
    closed = [s for s in newest if status[s] == "closed"]
    assert len(is_open) == OPEN and len(closed) == SESSIONS - OPEN
    viewport(browser, size)
    browser.get_log("browser")
    browser.get(base + "/sessions")
    wait_for_page(browser, f"page 1 · sessions 1–{PAGE}", newest[:PAGE], "page 1")
    choose_status(browser, "open")
    wait_for_page(browser, f"page 1 · sessions 1–{OPEN}", is_open, "open sessions")
    assert disabled(browser, "sessions-next")
    choose_status(browser, "closed")
    wait_for_page(browser, f"page 1 · sessions 1–{PAGE}", closed[:PAGE], "closed sessions")
    press(browser, "#sessions-next")
    wait_for_page(browser, f"page 2 · sessions {PAGE + 1}–{SESSIONS - OPEN}", closed[PAGE:],
                  "closed sessions, page 2")
    assert_console_clean(browser)
