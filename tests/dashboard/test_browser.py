"""The dashboard in real headless Chromium, served by `python -m dashboard` (waitress),
against a real Redis filled by the aggregator's own apply code."""

from __future__ import annotations

import csv
import io
import json
import time
from html.parser import HTMLParser
from pathlib import Path

import pypdf
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from moodstream.embedded import EmbeddedRedis
from moodstream.redis_keys import RedisKeys
from tests.dashboard.conftest import dashboard_process

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]
WAIT_S = 30


@pytest.fixture(scope="module")
def dashboard_url(filled_redis):
    env, _client, _prefix = filled_redis
    with dashboard_process(env) as (url, _proc):
        yield url


def wait_until(driver, condition, what: str, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d), message=what)


def text_of(driver, css: str) -> str:
    # Read in one JS call: the live tick re-renders tables, which would stale a WebElement.
    return driver.execute_script(
        "const el = document.querySelector(arguments[0]); return el ? el.innerText : '';", css)


def plot_data(driver, graph_id: str) -> list[dict]:
    """The traces plotly.js actually drew in a dcc.Graph: its decoded _fullData, with typed
    arrays as lists and NaN (a gap) as None."""
    return driver.execute_script(
        "const el = document.querySelector(`#${arguments[0]} .js-plotly-plot`);"
        "const plain = a => Array.from(a || [], v => Number.isNaN(v) ? null : v);"
        "return el && el._fullData ? el._fullData.map("
        "  t => ({name: t.name, x: plain(t.x), y: plain(t.y)})) : [];",
        graph_id)


def assert_console_clean(driver) -> None:
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], f"browser console errors: {errors}"


def assert_no_images(driver) -> None:
    # No face image is ever shown: the page holds no <img> at all (plotly draws SVG).
    assert driver.find_elements(By.TAG_NAME, "img") == []


def test_overview_shows_cameras_trend_mix_and_alert(browser, dashboard_url):
    browser.get(dashboard_url + "/")
    wait_until(browser, lambda d: "cam-b" in text_of(d, "#cameras"), "cameras table")
    table = text_of(browser, "#cameras")
    assert "cam-a" in table and "sess-a1" in table and "sess-b1" in table
    assert "ALERT" in table.splitlines()[[i for i, line in enumerate(table.splitlines())
                                          if "cam-a" in line][0]]
    wait_until(browser, lambda d: len(plot_data(d, "trend-graph")) == 2, "two trend lines")
    names = sorted(trace["name"] for trace in plot_data(browser, "trend-graph"))
    assert names == ["cam-a · sess-a1", "cam-b · sess-b1"]
    mix = plot_data(browser, "mix-graph")
    assert {t["name"] for t in mix} >= {"happy", "angry", "neutral"}
    assert sorted(mix[0]["y"]) == ["cam-a", "cam-b"]
    banner = text_of(browser, "#alerts-banner")
    assert "Alert on cam-a" in banner and "sess-a1" in banner
    assert text_of(browser, "#kpi-people") == "5"  # test_pages checks every tile
    assert "sess-a1" in text_of(browser, "#active") and "sess-a0" not in text_of(browser, "#active")
    assert "live · updated" in text_of(browser, "#redis-status")
    # The 1-min window keeps only the last minute: fewer points than the 5-min one.
    def cam_a_points(driver) -> int:  # cam-a has 120 s of data, cam-b 60 s
        return len(next(t["x"] for t in plot_data(driver, "trend-graph") if t["name"].startswith("cam-a")))

    assert cam_a_points(browser) > 100
    browser.find_element(By.CSS_SELECTOR, "#trend-window input[value='60']").click()
    wait_until(browser, lambda d: 0 < cam_a_points(d) <= 61, "1-minute trend window")
    assert_no_images(browser)
    assert_console_clean(browser)


def _wait_download(folder: Path, suffix: str) -> Path:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(f"*{suffix}") if p.stat().st_size > 0]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} download in {folder}: {list(folder.iterdir())}")


class _TagCounter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.script_srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.script_srcs += [v for k, v in attrs if tag == "script" and k == "src"]


def test_session_page_timeline_and_report_downloads(browser, dashboard_url, downloads):
    browser.get(dashboard_url + "/")
    wait_until(browser, lambda d: d.find_elements(By.LINK_TEXT, "sess-b1"), "session link")
    browser.find_element(By.LINK_TEXT, "sess-b1").click()
    wait_until(browser, lambda d: plot_data(d, "session-sentiment"), "session timeline")
    timeline = plot_data(browser, "session-sentiment")[0]
    assert timeline["x"][0] == 0 and timeline["x"][-1] == 59 and len(timeline["x"]) == 60
    assert timeline["y"][6] is None  # a second without faces is a gap, not a zero
    emotions = plot_data(browser, "session-emotions")
    assert sorted(t["name"] for t in emotions) == sorted(
        ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"])
    facts = text_of(browser, "#session-facts")
    assert "tracks (people)\t3" in facts and "camera\tcam-b" in facts

    for button, suffix in (("download-csv", ".csv"), ("download-json", ".json"),
                           ("download-html", ".html"), ("download-pdf", ".pdf")):
        browser.find_element(By.ID, button).click()
        _wait_download(downloads, suffix)

    rows = list(csv.DictReader(io.StringIO((downloads / "moodstream-sess-b1.csv").read_text())))
    assert len(rows) == 60 and rows[0]["session_id"] == "sess-b1" and rows[6]["sentiment"] == ""
    report = json.loads((downloads / "moodstream-sess-b1.json").read_text())
    assert report["session_id"] == "sess-b1" and report["faces_detected"] > 0
    assert len(report["timeline"]) == 60 and -1 <= report["mean_sentiment"] <= 1
    page = (downloads / "moodstream-sess-b1.html").read_text()
    parser = _TagCounter()
    parser.feed(page)
    assert parser.script_srcs == []  # self-contained: plotly.js is inline, nothing to fetch
    assert parser.tags.get("img", 0) == 0 and "sess-b1" in page and "Plotly.newPlot" in page
    pdf = pypdf.PdfReader(downloads / "moodstream-sess-b1.pdf")
    assert len(pdf.pages) >= 2 and "moodstream session sess-b1" in pdf.pages[0].extract_text()
    assert_console_clean(browser)


def test_sessions_page_lists_and_filters(browser, dashboard_url, filled_redis):
    _env, client, prefix = filled_redis
    browser.get(dashboard_url + "/sessions")
    wait_until(browser, lambda d: "sess-a0" in text_of(d, "#sessions"), "sessions table")
    listed = text_of(browser, "#sessions")
    assert all(s in listed for s in ("sess-a0", "sess-a1", "sess-b1"))
    # Expected from the aggregator's totals, independently of the dashboard's arithmetic.
    means = {s: float(client.hget(RedisKeys(prefix).totals(s), "sentiment_sum")) /
             float(client.hget(RedisKeys(prefix).totals(s), "faces"))
             for s in ("sess-a0", "sess-a1", "sess-b1")}
    threshold = round(sorted(means.values())[1] + 0.01, 2)  # only the happiest stays
    box = browser.find_element(By.ID, "filter-min")
    box.send_keys(str(threshold) + "\n")
    expected = max(means, key=means.get)
    wait_until(browser, lambda d: [s for s in means if s in text_of(d, "#sessions")] == [expected],
               "sentiment filter")
    assert_console_clean(browser)


def test_crafted_session_id_is_refused(browser, dashboard_url):
    browser.get(dashboard_url + "/session/..%2F..%2Fetc%2Fpasswd")
    wait_until(browser, lambda d: "Invalid session id" in text_of(d, "#session-title"),
               "invalid id message")
    assert_console_clean(browser)


def test_redis_going_away_shows_status_instead_of_crashing(browser, filled_redis):
    env, _client, _prefix = filled_redis
    with EmbeddedRedis() as doomed:
        own_env = dict(env, REDIS_URL=doomed.url)
        with dashboard_process(own_env) as (url, proc):
            browser.get(url + "/")
            wait_until(browser, lambda d: "live · updated" in text_of(d, "#redis-status"),
                       "live status")
            # An empty Redis: the empty state, and tiles that say zero rather than loading.
            wait_until(browser, lambda d: "No camera has reported yet" in text_of(d, "#no-cameras"),
                       "empty state")
            assert text_of(browser, "#kpi-people") == "0" and text_of(browser, "#kpi-index") == "—"
            doomed.stop()
            wait_until(browser, lambda d: "Redis unreachable" in text_of(d, "#redis-status"),
                       "Redis unreachable status")
            wait_until(browser, lambda d: "Redis unreachable" in text_of(d, "#overview-unreachable"),
                       "the overview says so too")
            assert text_of(browser, "#kpi-people") == "0"  # the last values stay
            assert proc.poll() is None  # still serving
            assert_console_clean(browser)  # callbacks answer normally while Redis is down
