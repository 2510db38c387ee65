"""Access control on the Flask server under Dash: HTTP basic auth and/or a bearer token.

A browser cannot add an Authorization header by itself, so the token may also arrive once
as ``?token=...``: it is then moved into an HttpOnly cookie and the URL is cleaned.
Credentials are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac

from flask import Flask, Response, redirect, request

TOKEN_COOKIE = "moodstream_token"


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def install_auth(server: Flask, basic: tuple[str, str] | None, token: str | None) -> None:
    """Guard every route; does nothing when neither credential is configured."""
    if not basic and not token:
        return

    def token_ok() -> bool:
        header = request.headers.get("Authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        return bool(token) and (_same(bearer, token) or _same(request.cookies.get(TOKEN_COOKIE), token))

    def basic_ok() -> bool:
        auth = request.authorization
        return bool(basic) and auth is not None and auth.type == "basic" and \
            _same(auth.username, basic[0]) & _same(auth.password, basic[1])

    @server.before_request
    def require_credentials():
        if token_ok() or basic_ok():
            return None
        if token and _same(request.args.get("token"), token):
            response = redirect(request.path)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
            return response
        headers = {"WWW-Authenticate": 'Basic realm="moodstream", charset="UTF-8"'} if basic else {}
        return Response("authentication required\n", 401, headers)
