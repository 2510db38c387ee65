"""Access control on the Flask server under Dash: HTTP basic auth and/or a bearer token.

A browser cannot add an Authorization header by itself, so the token may also arrive once
as ``?token=...``: it is then moved into an HttpOnly, SameSite=Strict cookie (Secure when
served over TLS) and the URL is cleaned. Credentials are compared in constant time and
never logged. A client that keeps presenting wrong credentials is throttled (429 with
Retry-After, see security.LoginThrottle); a request without any credentials is not a failure.

Who is asking (current_user): the basic-auth user name, TOKEN_USER for the bearer token, or
LOCAL_USER when no credentials are configured (the dashboard then serves loopback only).
Admins (settings.admins, by those names) may change alert thresholds; everyone else reads.
"""

from __future__ import annotations

import hmac

from flask import Flask, Response, g, redirect, request

from dashboard.security import LoginThrottle

TOKEN_COOKIE = "moodstream_token"
TOKEN_USER = "token"  # whoever holds the bearer token (e.g. a wall display)
LOCAL_USER = "local"  # anyone, when no credentials are configured (loopback only)


def current_user() -> str:
    """The signed-in user of the request being served (set by install_auth's guard)."""
    return g.get("moodstream_user", LOCAL_USER)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def install_auth(server: Flask, basic: tuple[str, str] | None, token: str | None, *,
                 secure_cookie: bool = False, throttle: LoginThrottle | None = None) -> None:
    """Guard every route; does nothing when neither credential is configured.
    secure_cookie: the token cookie is Secure even when the request itself looks like plain
    HTTP (TLS ends at a proxy in front: --behind-tls)."""
    if not basic and not token:
        return
    throttle = throttle or LoginThrottle()

    def token_ok() -> bool:
        header = request.headers.get("Authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        return bool(token) and (_same(bearer, token) or _same(request.cookies.get(TOKEN_COOKIE), token))

    def basic_ok() -> bool:
        auth = request.authorization
        return bool(basic) and auth is not None and auth.type == "basic" and \
            _same(auth.username, basic[0]) & _same(auth.password, basic[1])

    def presented() -> bool:
        return any((request.headers.get("Authorization"), request.cookies.get(TOKEN_COOKIE),
                    request.args.get("token")))

    @server.before_request
    def require_credentials():
        client = request.remote_addr or "unknown"
        wait = throttle.retry_after(client)
        if wait:
            return Response("too many failed logins: try again later\n", 429,
                            {"Retry-After": str(wait)})
        secure = secure_cookie or request.is_secure
        if basic_ok():
            throttle.succeeded(client)
            g.moodstream_user = basic[0]
            return None
        if token_ok():
            throttle.succeeded(client)
            g.moodstream_user = TOKEN_USER
            return None
        if token and _same(request.args.get("token"), token):
            throttle.succeeded(client)
            response = redirect(request.path)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", secure=secure)
            return response
        if presented():
            throttle.failed(client)
        headers = {"WWW-Authenticate": 'Basic realm="moodstream", charset="UTF-8"'} if basic else {}
        response = Response("authentication required\n", 401, headers)
        if request.cookies.get(TOKEN_COOKIE):  # a stale token: stop the browser resending it
            response.delete_cookie(TOKEN_COOKIE, httponly=True, samesite="Strict", secure=secure)
        return response
