"""Every page in headless Chromium at 1366×768, 1920×1080 and tablet size, against a real Redis filled by
the aggregator's own apply code: the KPI tiles equal what the seeded Redis holds, no console
errors (under the CSP), and a screenshot of each page kept as a test artefact.

Screenshots go to .cache/test-artifacts/dashboard/ (MOODSTREAM_TEST_ARTIFACTS overrides);
with MOODSTREAM_DOCS_IMG=1 they are also copied, palette-compressed, to docs/img/ (the
README links them).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import plotly.io as pio
import pytest
import redis

from moodstream import figures
from moodstream.redis_keys import RedisKeys
from tests.conftest import REPO
from tests.dashboard.conftest import dashboard_process
from tests.dashboard.redis_fill import Filler
from tests.dashboard.test_browser import assert_console_clean, plot_data, text_of, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]
# The two desktop sizes the issue names, and a tablet held upright (iPad Air).
VIEWPORTS = {"1366x768": (1366, 768), "1920x1080": (1920, 1080), "tablet-820x1180": (820, 1180)}
ARTIFACTS = Path(os.environ.get("MOODSTREAM_TEST_ARTIFACTS", REPO / ".cache" / "test-artifacts")) \
    / "dashboard"
LIVE_S, INDEX_S, FACES_S = 120, 300, 60  # as dashboard.kpis defines them


@pytest.fixture(params=list(VIEWPORTS), scope="module")
def seeded(request, redis_server):
    """A fresh fill and dashboard per viewport (the KPIs are about the last minutes)."""
    prefix = f"p{uuid.uuid4().hex[:8]}"
    url = f"redis://{redis_server.host}:{redis_server.port}/13"
    client = redis.Redis.from_url(url, decode_responses=True)
    filler, now = Filler(client, prefix), time.time()
    filler.session("cam-a", "sess-a0", now - 7200, 30, 0.5, 0.6, end=True)
    filler.session("cam-a", "sess-a1", now - 120, 120, 0.8, -0.9)  # turns sour: alert
    filler.session("cam-b", "sess-b1", now - 60, 60, -0.2, 0.9, people=3)
    client.hset(RedisKeys(prefix).camera_live("cam-b"),
                mapping={"purpose": "queue length at checkout 2", "notice": "1"})
    env = dict(os.environ, REDIS_URL=url, MOODSTREAM_REDIS_PREFIX=prefix, PYTHONUNBUFFERED="1")
    try:
        with dashboard_process(env) as (base, _proc):
            yield request.param, base, client, prefix
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


def expected_kpis(client: redis.Redis, prefix: str, now: float) -> dict:
    """The tiles, computed straight from the aggregator's keys (not the dashboard's code)."""
    sentiments, faces, people = [], 0, 0
    for camera in client.zrange(f"{prefix}:cameras", 0, -1):
        live = client.hgetall(RedisKeys(prefix).camera_live(camera))
        if not live.get("session_id") or now - float(live["last_seen"]) > LIVE_S:
            continue
        people += int(live["people"])
        started = float(client.hget(RedisKeys(prefix).meta(live["session_id"]), "started_at"))
        buckets = client.hgetall(RedisKeys(prefix).buckets(live["session_id"]))
        for field, value in buckets.items():
            second, _, name = field.partition("|")
            at = started + int(second)
            if name == "faces" and float(value) > 0:
                if at >= now - INDEX_S:
                    sentiments.append(float(buckets[f"{second}|sentiment_sum"]) / float(value))
                if at >= now - FACES_S:
                    faces += int(float(value))
    return {"index": 50 * (sum(sentiments) / len(sentiments) + 1), "faces": faces,
            "people": people, "alerts": client.hlen(f"{prefix}:alerts:open")}


def viewport(driver, size: str) -> None:
    width, height = VIEWPORTS[size]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # a real picture, not a blank page
    if os.environ.get("MOODSTREAM_DOCS_IMG") == "1":
        from PIL import Image
        docs = REPO / "docs" / "img"
        docs.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").quantize(colors=128).save(docs / path.name, optimize=True)
    return path


def test_overview_kpis_cards_and_themes(browser, seeded):
    size, base, client, prefix = seeded
    viewport(browser, size)
    browser.get_log("browser")
    before = expected_kpis(client, prefix, time.time())
    browser.get(base + "/")
    wait_until(browser, lambda d: text_of(d, "#kpi-people") not in ("", "…"), "KPI tiles")
    wait_until(browser, lambda d: len(d.find_elements("css selector", ".camera-card")) == 2,
               "two camera cards")
    # The tiles as shown, all read at once, then Redis again: the page refreshes every tick,
    # so a tile read after `after` could show a later tick than it.
    tiles = tile_texts(browser)
    after = expected_kpis(client, prefix, time.time())
    assert tiles["kpi-people"] == str(before["people"]) == "5"
    assert tiles["kpi-alerts"] == str(before["alerts"]) == "1"
    assert abs(int(tiles["kpi-index"]) - before["index"]) <= 1
    # Faces in the last minute only fall as the seeded seconds age.
    assert after["faces"] <= int(tiles["kpi-faces"]) <= before["faces"]
    cards = {cam: text_of(browser, f".camera-card[data-camera='{cam}']") for cam in ("cam-a", "cam-b")}
    assert "ALERT" in cards["cam-a"] and "purpose not set" in cards["cam-a"]
    assert "queue length at checkout 2" in cards["cam-b"] and "notice posted" in cards["cam-b"]
    assert "3 people" in cards["cam-b"] and "2 people" in cards["cam-a"]
    # plotly.js draws a card's sparkline after the card is in the page (its bundle loads
    # lazily, then Plotly.react): wait for both lines, every second of each session.
    wait_until(browser, lambda d: sorted(spark_lengths(d)) == [60, 120], "both sparklines")
    wait_until(browser, lambda d: len(plot_data(d, "trend-graph")) == 2, "trend lines")
    # No horizontal scrolling at this size, and the navigation is readable.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= \
        VIEWPORTS[size][0]
    assert text_of(browser, "#nav-sessions") == "Sessions" and browser.find_element(
        "id", "nav-sessions").is_displayed()
    screenshot(browser, f"overview-{size}")
    browser.execute_script("document.querySelector('#theme-switch').click()")
    wait_until(browser, lambda d: d.execute_script(
        "return document.getElementById('theme-root').getAttribute('data-bs-theme')") == "dark",
        "dark theme")
    # The switch is an input of the overview's callback: wait until its charts are redrawn.
    wait_until(browser, lambda d: drawn_dark(d), "charts in the dark template")
    screenshot(browser, f"overview-dark-{size}")
    browser.execute_script("document.querySelector('#theme-switch').click()")  # back to light
    assert_console_clean(browser)


def tile_texts(driver) -> dict[str, str]:
    """The four KPI tiles' texts, read in one script (one moment of the page)."""
    return driver.execute_script(
        "return Object.fromEntries(['kpi-index', 'kpi-people', 'kpi-faces', 'kpi-alerts']"
        ".map(id => [id, (document.getElementById(id) || {}).innerText || '']))")


def spark_lengths(driver) -> list[int]:
    """Points of each sparkline plotly.js has drawn (0 for one not drawn yet)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.camera-spark .js-plotly-plot'))"
        ".map(el => el._fullData && el._fullData[0] ? el._fullData[0].y.length : 0)")


def drawn_dark(driver) -> bool:
    """Both overview charts drawn with the dark template's font and every sparkline in
    the dark theme's colour (moodstream.figures)."""
    font = pio.templates["plotly_dark"].layout.font.color
    return driver.execute_script(
        "const font = id => { const el = document.querySelector(`#${id} .js-plotly-plot`);"
        "  return el && el._fullLayout ? el._fullLayout.font.color : null; };"
        "const sparks = Array.from(document.querySelectorAll('.camera-spark .js-plotly-plot'));"
        "return font('trend-graph') === arguments[0] && font('mix-graph') === arguments[0]"
        "  && sparks.length > 0 && sparks.every(el => el._fullData && el._fullData[0]"
        "  && el._fullData[0].line.color === arguments[1]);",
        font, figures.OKABE_ITO["sky_blue"])


def test_sessions_and_session_pages(browser, seeded):
    size, base, client, prefix = seeded
    viewport(browser, size)
    browser.get_log("browser")
    browser.get(base + "/sessions")
    wait_until(browser, lambda d: "sess-a0" in text_of(d, "#sessions"), "sessions table")
    listed = text_of(browser, "#sessions")
    assert all(s in listed for s in ("sess-a0", "sess-a1", "sess-b1"))
    # Server-side pages: all of these fit on the first, so neither pager button works.
    assert text_of(browser, "#sessions-page-label").startswith("page 1 · sessions 1–")
    assert all(browser.find_element("id", button).get_attribute("disabled")
               for button in ("sessions-prev", "sessions-next"))
    screenshot(browser, f"sessions-{size}")
    browser.get(base + "/session/sess-b1")
    wait_until(browser, lambda d: plot_data(d, "session-sentiment"), "session timeline")
    faces = client.hget(RedisKeys(prefix).totals("sess-b1"), "faces")
    assert f"faces detected\t{int(float(faces))}" in text_of(browser, "#session-facts")
    screenshot(browser, f"session-{size}")
    browser.get(base + "/no-such-page")
    wait_until(browser, lambda d: "No such page" in text_of(d, "#page-missing"), "404 page")
    assert_console_clean(browser)
