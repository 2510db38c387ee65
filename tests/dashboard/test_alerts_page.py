"""The alerts page: its data layer against a real Valkey filled by the aggregator's own code,
and the page in real headless Chromium served by `python -m dashboard` (acknowledging an
alert with a note, and thresholds an admin may change and a non-admin may not)."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.request

import pytest
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from dashboard.alerts_data import NOTE_MAX_CHARS, AlertInputError, AlertsData
from dashboard.data import DashboardData, DataUnavailable
from moodstream.alert_thresholds import parse_thresholds
from moodstream.embedded import free_port
from moodstream.redis_keys import RedisKeys
from tests.dashboard.conftest import dashboard_process
from tests.dashboard.redis_fill import Filler
from tests.dashboard.test_browser import assert_console_clean, text_of, wait_until
from tests.dashboard.test_pages import screenshot, viewport
from tests.conftest import redis_namespace

ADMIN, ADMIN_PASSWORD, TOKEN = "boss", "boss-pw-1", "wall-display-token"


@pytest.fixture(scope="module")
def alerts_redis(redis_server):
    """cam-a: a session that turns sour (its alert stays open); cam-c: one that starts sour
    and recovers (its alert resolved), then ends. Yields (client, prefix, url)."""
    with redis_namespace(redis_server, 12) as (client, prefix, url):
        filler, now = Filler(client, prefix), time.time()
        filler.session("cam-a", "sess-a1", now - 120, 120, 0.8, -0.9)
        filler.session("cam-c", "sess-c1", now - 400, 120, -0.9, 0.9, end=True)
        yield client, prefix, url


@pytest.fixture
def alerts_data(alerts_redis) -> AlertsData:
    client, prefix, _url = alerts_redis
    return AlertsData(DashboardData(client, RedisKeys(prefix)), ack_ttl_s=3600)


def _alert_of(client, prefix: str, camera: str) -> dict:
    """The aggregator's record of the camera's alert, read straight from its session list."""
    session = {"cam-a": "sess-a1", "cam-c": "sess-c1"}[camera]
    return json.loads(client.lindex(RedisKeys(prefix).alerts(session), 0))


# --- data layer, real Valkey ---
@pytest.mark.integration
def test_lists_open_and_resolved_alerts_filtered_by_camera_and_status(alerts_data, alerts_redis):
    client, prefix, _url = alerts_redis
    rows = alerts_data.alerts()
    assert [(r.camera_id, r.session_id, r.status) for r in rows] == [
        ("cam-a", "sess-a1", "open"), ("cam-c", "sess-c1", "resolved")]  # open ones first
    resolved = _alert_of(client, prefix, "cam-c")
    assert rows[1].alert_id == resolved["id"] and rows[1].resolved_because == "cleared"
    assert rows[1].worst == pytest.approx(resolved["worst"]) and rows[1].resolved_at
    live = json.loads(client.hget(RedisKeys(prefix).open_alerts, "cam-a"))
    assert rows[0].alert_id == live["id"] and rows[0].threshold == pytest.approx(-0.35)
    assert [r.camera_id for r in alerts_data.alerts(camera_id="cam-c")] == ["cam-c"]
    assert [r.status for r in alerts_data.alerts(status="open")] == ["open"]
    assert alerts_data.alerts(camera_id="cam-a", status="resolved") == []


@pytest.mark.integration
def test_an_acknowledgement_is_stored_bounded_and_shown_with_who_and_when(alerts_data,
                                                                          alerts_redis):
    client, prefix, _url = alerts_redis
    alert = _alert_of(client, prefix, "cam-c")
    ack = alerts_data.acknowledge("cam-c", "sess-c1", alert["id"], "ops",
                                  "  called the store\x07 manager\n<b>done</b>  ")
    assert ack.note == "called the store manager\n<b>done</b>"  # control chars dropped
    key = RedisKeys(prefix).alert_acks("cam-c")
    assert "{cam:cam-c}" in key  # the camera id in a Redis Cluster hash tag
    stored = json.loads(client.hget(key, alert["id"]))
    assert stored["by"] == "ops" and stored["note"] == ack.note and stored["session_id"] == "sess-c1"
    assert 0 < client.ttl(key) <= 3600
    row = alerts_data.alerts(camera_id="cam-c")[0]
    assert row.ack is not None and (row.ack.by, row.ack.note) == ("ops", ack.note)
    assert abs(row.ack.at - time.time()) < 60


@pytest.mark.integration
@pytest.mark.parametrize("camera, session, alert_id, note, why", [
    ("cam-a", "sess-c1", "own", "x", "no such alert"),  # the alert is cam-c's
    ("cam-c", "sess-c1", "0123456789ab", "x", "no such alert"),  # no such id
    ("cam-c", "sess-c1", "../../etc", "x", "no such alert"),
    ("cam c", "sess-c1", "own", "x", "no such alert"),
    ("cam-c", "sess-c1", "own", "n" * (NOTE_MAX_CHARS + 1), "at most 500"),
])
def test_a_bad_acknowledgement_is_refused_and_writes_nothing(alerts_data, alerts_redis, camera,
                                                             session, alert_id, note, why):
    client, prefix, _url = alerts_redis
    own = _alert_of(client, prefix, "cam-c")["id"]
    before = {k: client.hgetall(k) for k in client.scan_iter(f"{prefix}:*alert_acks")}
    with pytest.raises(AlertInputError, match=why):
        alerts_data.acknowledge(camera, session, own if alert_id == "own" else alert_id, "ops",
                                note)
    after = {k: client.hgetall(k) for k in client.scan_iter(f"{prefix}:*alert_acks")}
    assert after == before


@pytest.mark.integration
def test_thresholds_are_validated_stored_and_cleared(alerts_data, alerts_redis):
    client, prefix, _url = alerts_redis
    key = RedisKeys(prefix).alert_thresholds
    for bad, why in (((0.3, 0.4, 5), "must not exceed"), ((0, 0, 5), r"\(0, 1\]"),
                     ((float("nan"), 0.1, 5), "finite"), ((0.3, 0.1, -1), "minimum duration"),
                     ((0.3, 0.1, float("inf")), "finite"), (("x", 0.1, 5), "number"),
                     ((None, 0.1, 5), "number"), ((1.5, 0.1, 5), r"\(0, 1\]")):
        with pytest.raises(AlertInputError, match=why):
            alerts_data.set_thresholds("cam-a", *bad, "boss")
    with pytest.raises(AlertInputError, match="camera"):
        alerts_data.set_thresholds("cam a", 0.3, 0.1, 5, "boss")
    assert client.hlen(key) == 0
    saved = alerts_data.set_thresholds("cam-a", 0.25, 0.1, 2, "boss")
    assert parse_thresholds(client.hget(key, "cam-a")) == saved
    assert (saved.threshold, saved.resolve_threshold, saved.min_duration_s, saved.updated_by) \
        == (0.25, 0.1, 2.0, "boss")
    client.hset(key, "cam-x", json.dumps({"threshold": 0.1, "resolve_threshold": 0.5,
                                          "min_duration_s": 1}))  # not valid: left out
    assert alerts_data.thresholds() == {"cam-a": saved}
    assert alerts_data.clear_thresholds("cam-a") and not alerts_data.clear_thresholds("cam-a")
    client.delete(key)


def test_redis_down_is_data_unavailable_not_a_traceback():
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    data = AlertsData(DashboardData(client, RedisKeys("x")), ack_ttl_s=0)
    for call in (data.alerts, data.thresholds,
                 lambda: data.acknowledge("cam-a", "s", "0123456789ab", "ops", "note"),
                 lambda: data.set_thresholds("cam-a", 0.3, 0.1, 1, "boss")):
        with pytest.raises(DataUnavailable, match="Redis unreachable"):
            call()


# --- the page, real headless Chromium ---
def _authorize(browser, header: str) -> None:
    """Every request of the browser carries this Authorization header (CDP)."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": header}})


def _has_option(driver, select_id: str, value: str) -> bool:
    return driver.execute_script(
        "const el = document.getElementById(arguments[0]);"
        "return !!el && Array.from(el.options).some(o => o.value === arguments[1]);",
        select_id, value)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _save_thresholds_callback(base: str, authorization: str, camera: str) -> str:
    """POST the thresholds form's save callback as Dash's renderer would; the response body."""
    def call(path: str, body: dict | None = None) -> str:
        request = urllib.request.Request(base + path, headers={
            "Authorization": authorization, "Content-Type": "application/json"},
            data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    callback = next(cb for cb in json.loads(call("/_dash-dependencies"))
                    if "thr-result.children" in cb["output"])
    values = {"thr-camera": camera, "thr-threshold": 0.2, "thr-resolve": 0.1,
              "thr-duration": 1, "thr-saved": 0}
    return call("/_dash-update-component", {
        "output": callback["output"],
        "outputs": [{"id": "thr-result", "property": "children"},
                    {"id": "thr-saved", "property": "data"}],
        "inputs": [{"id": "thr-save", "property": "n_clicks", "value": 1},
                   {"id": "thr-reset", "property": "n_clicks", "value": None}],
        "changedPropIds": ["thr-save.n_clicks"],
        "state": [{"id": s["id"], "property": s["property"], "value": values[s["id"]]}
                  for s in callback["state"]]})


@pytest.fixture(scope="module")
def alerts_page(alerts_redis):
    """The dashboard with a basic-auth admin (boss) and a bearer token (a non-admin)."""
    _client, prefix, url = alerts_redis
    env = dict(os.environ, REDIS_URL=url, MOODSTREAM_REDIS_PREFIX=prefix, PYTHONUNBUFFERED="1",
               MOODSTREAM_DASHBOARD_USER=ADMIN, MOODSTREAM_DASHBOARD_PASSWORD=ADMIN_PASSWORD,
               MOODSTREAM_DASHBOARD_TOKEN=TOKEN, MOODSTREAM_DASHBOARD_ADMINS=ADMIN)
    with dashboard_process(env) as (base, _proc):
        yield base


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.integration
def test_acknowledging_an_alert_with_a_note_shows_it_to_everyone(browser, alerts_page,
                                                                 alerts_redis):
    client, prefix, _url = alerts_redis
    alert = _alert_of(client, prefix, "cam-a")
    _authorize(browser, f"Bearer {TOKEN}")  # any signed-in user may acknowledge
    browser.get(alerts_page + "/alerts")
    wait_until(browser, lambda d: "sess-c1" in text_of(d, "#alerts"), "alerts table")
    wait_until(browser, lambda d: _has_option(d, "alerts-camera", "cam-c"), "camera filter options")
    Select(browser.find_element(By.ID, "alerts-camera")).select_by_value("cam-c")
    wait_until(browser, lambda d: "sess-a1" not in text_of(d, "#alerts"), "camera filter")
    assert "sess-c1" in text_of(browser, "#alerts")
    Select(browser.find_element(By.ID, "alerts-camera")).select_by_visible_text("all cameras")
    Select(browser.find_element(By.ID, "alerts-status")).select_by_value("open")
    wait_until(browser, lambda d: "sess-a1" in text_of(d, "#alerts")
               and "sess-c1" not in text_of(d, "#alerts"), "status filter")
    button = browser.find_element(By.XPATH, "//table[@id='alerts']//tr[td[text()='cam-a']]//button")
    button.click()
    wait_until(browser, lambda d: alert["id"] in text_of(d, "#ack-target-label"), "ack form")
    note = "Spoke to the queue <b>staff</b> & opened till 3"
    browser.find_element(By.ID, "ack-note").send_keys(note)
    browser.find_element(By.ID, "ack-save").click()
    wait_until(browser, lambda d: "Acknowledged by token" in text_of(d, "#ack-done"), "saved")
    stored = json.loads(client.hget(RedisKeys(prefix).alert_acks("cam-a"), alert["id"]))
    assert (stored["by"], stored["note"]) == ("token", note)

    # Another viewer (the admin, a fresh page load) sees who, when and the note, as text.
    _authorize(browser, _basic(ADMIN, ADMIN_PASSWORD))
    browser.get(alerts_page + "/alerts")
    wait_until(browser, lambda d: note in text_of(d, "#alerts .ack-note"), "the note, shown")
    assert "token · " in text_of(browser, "#alerts .ack-by")
    assert browser.find_elements(By.CSS_SELECTOR, "#alerts .ack-note b") == []  # escaped
    assert_console_clean(browser)
    try:
        for size in ("1366x768", "1920x1080"):
            viewport(browser, size)
            screenshot(browser, f"alerts-{size}")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.integration
def test_a_non_admin_cannot_change_thresholds(browser, alerts_page, alerts_redis):
    client, prefix, _url = alerts_redis
    _authorize(browser, f"Bearer {TOKEN}")
    browser.get(alerts_page + "/alerts")
    wait_until(browser, lambda d: "only an admin" in text_of(d, "#thr-readonly"), "read-only note")
    for control in ("thr-threshold", "thr-resolve", "thr-duration", "thr-save", "thr-reset"):
        assert not browser.find_element(By.ID, control).is_enabled(), control
    assert_console_clean(browser)
    # A hand-made request to the save callback, as a non-admin could send it without the
    # page: the server checks the user again and writes nothing. The admin's same request
    # is accepted, so the refusal is the check and not a malformed request.
    refused = _save_thresholds_callback(alerts_page, f"Bearer {TOKEN}", "cam-a")
    assert "only an admin may change thresholds (token is not one)" in refused
    assert client.hlen(RedisKeys(prefix).alert_thresholds) == 0
    accepted = _save_thresholds_callback(alerts_page, _basic(ADMIN, ADMIN_PASSWORD), "cam-a")
    assert "Saved: cam-a" in accepted
    assert parse_thresholds(client.hget(RedisKeys(prefix).alert_thresholds, "cam-a")).threshold == 0.2
    client.delete(RedisKeys(prefix).alert_thresholds)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.integration
def test_an_admin_changes_a_cameras_thresholds(browser, alerts_page, alerts_redis):
    client, prefix, _url = alerts_redis
    _authorize(browser, _basic(ADMIN, ADMIN_PASSWORD))
    browser.get(alerts_page + "/alerts")
    wait_until(browser, lambda d: "you may change" in text_of(d, "#thr-admin"), "admin note")
    wait_until(browser, lambda d: _has_option(d, "thr-camera", "cam-c"), "camera options")
    Select(browser.find_element(By.ID, "thr-camera")).select_by_value("cam-c")
    wait_until(browser, lambda d: "cam-c uses the aggregator's defaults" in text_of(d, "#thr-shown"),
               "the camera's current thresholds in the form")
    for control, value in (("thr-threshold", "0.2"), ("thr-resolve", "0.3"), ("thr-duration", "1")):
        browser.find_element(By.ID, control).send_keys(value)
    browser.find_element(By.ID, "thr-save").click()  # resolve above threshold: refused
    wait_until(browser, lambda d: "must not exceed" in text_of(d, "#thr-error"), "refusal")
    resolve = browser.find_element(By.ID, "thr-resolve")
    resolve.clear()
    resolve.send_keys("0.05")
    browser.find_element(By.ID, "thr-save").click()
    wait_until(browser, lambda d: "Saved: cam-c" in text_of(d, "#thr-done"), "saved")
    stored = parse_thresholds(client.hget(RedisKeys(prefix).alert_thresholds, "cam-c"))
    assert (stored.threshold, stored.resolve_threshold, stored.min_duration_s,
            stored.updated_by) == (0.2, 0.05, 1.0, ADMIN)
    wait_until(browser, lambda d: "cam-c" in text_of(d, "#thresholds"), "thresholds table")
    assert "boss · " in text_of(browser, "#thresholds")
    client.delete(RedisKeys(prefix).alert_thresholds)
    assert_console_clean(browser)
