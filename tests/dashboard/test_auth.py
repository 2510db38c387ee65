"""Access control on the real Flask server under Dash (Flask's test client, no socket)."""

from __future__ import annotations

import base64

import pytest
from flask import Flask

from dashboard.auth import TOKEN_COOKIE, install_auth


def _server(basic=None, token=None) -> Flask:
    server = Flask("t")
    server.add_url_rule("/", "index", lambda: "dashboard")
    server.add_url_rule("/_dash-update-component", "update", lambda: "ok", methods=["POST"])
    install_auth(server, basic, token)
    return server.test_client()


def _basic(user: str, password: str) -> dict:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_no_credentials_configured_means_open():
    assert _server().get("/").status_code == 200


def test_basic_auth():
    client = _server(basic=("ops", "pw"))
    denied = client.get("/")
    assert denied.status_code == 401 and "Basic" in denied.headers["WWW-Authenticate"]
    assert client.get("/", headers=_basic("ops", "wrong")).status_code == 401
    assert client.get("/", headers=_basic("other", "pw")).status_code == 401
    assert client.get("/", headers=_basic("ops", "pw")).status_code == 200
    assert client.post("/_dash-update-component").status_code == 401  # callbacks too


@pytest.mark.parametrize("route", ["/", "/_dash-update-component"])
def test_token_by_bearer_header(route):
    client = _server(token="tok")
    call = client.get if route == "/" else client.post
    assert call(route).status_code == 401
    assert call(route, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert call(route, headers={"Authorization": "Bearer tok"}).status_code == 200


def test_token_in_url_becomes_a_cookie_and_leaves_the_url():
    client = _server(token="tok")
    assert client.get("/?token=nope").status_code == 401
    first = client.get("/?token=tok")
    assert first.status_code == 302 and first.headers["Location"].endswith("/")
    cookie = first.headers["Set-Cookie"]
    assert cookie.startswith(f"{TOKEN_COOKIE}=tok") and "HttpOnly" in cookie
    assert client.get("/").status_code == 200  # the cookie now carries it


def test_current_user_is_the_basic_user_the_token_or_local():
    from dashboard.auth import LOCAL_USER, TOKEN_USER, current_user

    def whoami_server(basic=None, token=None):
        server = Flask("t")
        server.add_url_rule("/", "who", current_user)
        install_auth(server, basic, token)
        return server.test_client()

    both = whoami_server(basic=("ops", "pw"), token="tok")
    assert both.get("/", headers=_basic("ops", "pw")).text == "ops"
    assert both.get("/", headers={"Authorization": "Bearer tok"}).text == TOKEN_USER
    assert both.get("/").status_code == 401  # nobody: no user at all
    assert whoami_server().get("/").text == LOCAL_USER  # loopback only, no credentials set
