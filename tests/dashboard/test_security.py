"""Dashboard hardening: security headers on every response, failed-login throttling, the
Secure cookie behind TLS. Unit tests on the Flask server with a fake clock; then the real
`python -m dashboard` over HTTP, and the real page under its CSP in headless Chromium."""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request

import pytest
from flask import Flask

from dashboard.auth import TOKEN_COOKIE, install_auth
from dashboard.security import (LoginThrottle, content_security_policy,
                                install_security_headers)
from tests.dashboard.conftest import dashboard_process

SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "Referrer-Policy",
                    "X-Content-Type-Options")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _server(clock: Clock, secure_cookie: bool = False, headers: bool = False):
    server = Flask("t")
    server.add_url_rule("/", "index", lambda: "dashboard")
    install_auth(server, ("ops", "pw"), "tok", secure_cookie=secure_cookie,
                 throttle=LoginThrottle(clock=clock))
    if headers:
        install_security_headers(server, content_security_policy(["'sha256-abc='"]))
    return server.test_client()


# ---------------------------------------------------------------- throttle


def test_five_failures_in_a_minute_lock_the_client_out_with_retry_after():
    clock = Clock()
    client = _server(clock)
    for _ in range(4):
        assert client.get("/", headers=_basic("ops", "wrong")).status_code == 401
        clock.now += 10
    assert client.get("/", headers=_basic("ops", "wrong")).status_code == 401  # 5th in 40 s
    blocked = client.get("/", headers=_basic("ops", "pw"))
    # Locked out even with the right password: otherwise guessing would go on.
    assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "30"
    clock.now += 20
    assert client.get("/").headers["Retry-After"] == "10"
    clock.now += 10.5
    assert client.get("/", headers=_basic("ops", "pw")).status_code == 200


def test_lockouts_double_and_are_capped():
    clock = Clock()
    client = _server(clock)
    waits = []
    for _ in range(9):
        for _ in range(5):
            assert client.get("/?token=guess").status_code == 401
        waits.append(int(client.get("/").headers["Retry-After"]))
        clock.now += waits[-1]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_slow_failures_and_anonymous_requests_do_not_lock_out():
    clock = Clock()
    client = _server(clock)
    for _ in range(20):  # one wrong guess every 16 s: never five within a minute
        assert client.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401
        clock.now += 16
    for _ in range(20):  # a browser's first request carries no credentials: not a failure
        assert client.get("/").status_code == 401


def test_success_forgives_and_clients_are_counted_apart():
    clock = Clock()
    client = _server(clock)
    for _ in range(4):
        client.get("/", headers=_basic("ops", "wrong"))
    assert client.get("/", headers=_basic("ops", "pw")).status_code == 200
    for _ in range(4):
        assert client.get("/", headers=_basic("ops", "wrong")).status_code == 401
    for _ in range(5):
        client.get("/", headers=_basic("ops", "wrong"), environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert client.get("/", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 429
    assert client.get("/", headers=_basic("ops", "pw")).status_code == 200  # 127.0.0.1 is fine


def test_a_stale_token_cookie_is_cleared_so_the_browser_stops_sending_it():
    client = _server(Clock())
    client.set_cookie(TOKEN_COOKIE, "old-token")
    denied = client.get("/")
    assert denied.status_code == 401
    assert f"{TOKEN_COOKIE}=;" in denied.headers["Set-Cookie"]  # expired


def test_throttle_forgets_after_an_hour_and_bounds_its_memory():
    clock = Clock()
    throttle = LoginThrottle(clock=clock, max_clients=50)
    for _ in range(5):
        throttle.failed("a")
    clock.now += 30
    for _ in range(5):
        throttle.failed("a")
    assert throttle.retry_after("a") == 60  # second lockout
    clock.now += 3700  # an hour without failures: starts again from the first lockout
    for _ in range(5):
        throttle.failed("a")
    assert throttle.retry_after("a") == 30
    for n in range(500):
        throttle.failed(f"10.0.{n // 250}.{n % 250}")
    assert len(throttle._clients) <= 50


# ---------------------------------------------------------------- cookie and headers


@pytest.mark.parametrize("secure_cookie, base_url, secure", [
    (False, "http://localhost", False),
    (True, "http://localhost", True),  # --behind-tls: TLS ended at the proxy
    (False, "https://localhost", True),  # the request itself came over TLS
])
def test_token_cookie_is_secure_behind_tls(secure_cookie, base_url, secure):
    client = _server(Clock(), secure_cookie=secure_cookie)
    cookie = client.get("/?token=tok", base_url=base_url).headers["Set-Cookie"]
    assert cookie.startswith(f"{TOKEN_COOKIE}=tok") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and ("; Secure" in cookie) is secure


def test_headers_are_on_every_response_including_refusals():
    clock = Clock()
    client = _server(clock, headers=True)
    responses = [client.get("/"), client.get("/", headers=_basic("ops", "pw")),
                 client.get("/missing", headers=_basic("ops", "pw"))]
    for _ in range(5):
        client.get("/", headers=_basic("ops", "wrong"))
    responses.append(client.get("/"))
    assert [r.status_code for r in responses] == [401, 200, 404, 429]
    for response in responses:
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "'sha256-abc='" in response.headers["Content-Security-Policy"]


# ---------------------------------------------------------------- the real server


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "MOODSTREAM_"))}
    env.update(REDIS_URL=redis_url, **extra)
    return env


def _get(url: str, headers: dict | None = None):
    """(status, headers, body) of a GET that neither raises on 4xx nor follows redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _assert_security_headers(headers) -> None:
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
    assert "default-src 'self'" in csp and "object-src 'none'" in csp
    assert (headers["X-Frame-Options"], headers["Referrer-Policy"],
            headers["X-Content-Type-Options"]) == ("DENY", "no-referrer", "nosniff")


@pytest.mark.integration
@pytest.mark.slow  # starts the whole app (Dash import) in a subprocess
def test_real_server_behind_tls_headers_secure_cookie_and_throttle_per_forwarded_client(
        redis_server):
    env = _env(redis_server.url, MOODSTREAM_DASHBOARD_TOKEN="tok-abc", MOODSTREAM_DASHBOARD_USER="ops",
               MOODSTREAM_DASHBOARD_PASSWORD="pw-abc")
    with dashboard_process(env, "--behind-tls") as (url, _proc):
        ok = _basic("ops", "pw-abc")
        status, page, body = _get(url + "/", ok)
        assert status == 200 and b"_dash-renderer" in body
        _assert_security_headers(page)
        assert page["Strict-Transport-Security"].startswith("max-age=")
        for path in ("/_dash-layout", "/_dash-dependencies", "/no-such-page.js"):
            _assert_security_headers(_get(url + path, ok)[1])
        status, refused, _ = _get(url + "/_dash-layout")
        assert status == 401
        _assert_security_headers(refused)

        status, redirect, _ = _get(url + "/?token=tok-abc")
        cookie = redirect["Set-Cookie"]
        assert status == 302 and cookie.startswith(f"{TOKEN_COOKIE}=tok-abc")
        assert "; Secure" in cookie and "HttpOnly" in cookie

        attacker = {"X-Forwarded-For": "203.0.113.7", **_basic("ops", "guess")}
        assert [_get(url + "/", attacker)[0] for _ in range(5)] == [401] * 5
        status, blocked, _ = _get(url + "/", {**attacker, **ok})
        assert status == 429 and 25 <= int(blocked["Retry-After"]) <= 30
        _assert_security_headers(blocked)
        # Another client behind the same proxy is not locked out with the attacker.
        assert _get(url + "/", {"X-Forwarded-For": "203.0.113.8", **ok})[0] == 200


@pytest.mark.integration
@pytest.mark.slow  # starts the whole app (Dash import) in a subprocess
def test_real_server_without_tls_flag_ignores_forwarded_headers(redis_server):
    env = _env(redis_server.url, MOODSTREAM_DASHBOARD_TOKEN="tok-abc")
    with dashboard_process(env) as (url, _proc):
        status, redirect, _ = _get(url + "/?token=tok-abc", {"X-Forwarded-Proto": "https"})
        assert status == 302 and "Secure" not in redirect["Set-Cookie"]
        assert "Strict-Transport-Security" not in redirect
        _assert_security_headers(redirect)
        # A spoofed X-Forwarded-For does not give each guess a fresh client.
        for n in range(5):
            bad = {"X-Forwarded-For": f"198.51.100.{n}", "Authorization": "Bearer guess"}
            assert _get(url + "/", bad)[0] == 401
        assert _get(url + "/", {"X-Forwarded-For": "198.51.100.99"})[0] == 429


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.slow
def test_pages_work_under_the_csp_in_a_real_browser(browser, filled_redis, downloads):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    env, _client, _prefix = filled_redis
    with dashboard_process(env) as (url, _proc):
        browser.get_log("browser")  # start from an empty console
        browser.get(url + "/")
        traces = ("const el = document.querySelector('#trend-graph .js-plotly-plot');"
                  "return el && el._fullData ? el._fullData.length : 0;")
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(traces) == 2,
                                         "the overview draws its trend lines")
        browser.get(url + "/session/sess-b1")
        timeline = ("const el = document.querySelector('#session-sentiment .js-plotly-plot');"
                    "return el && el._fullData ? el._fullData.length : 0;")
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(timeline) >= 1,
                                         "the session page draws its timeline")
        browser.find_element(By.ID, "download-json").click()  # dcc.Download under the CSP
        WebDriverWait(browser, 30).until(
            lambda d: (downloads / "moodstream-sess-b1.json").exists(), "the JSON download")
        logs = browser.get_log("browser")
    violations = [e for e in logs if "Content Security Policy" in e["message"]
                  or e["level"] == "SEVERE"]
    assert violations == [], violations
