"""HTTP hardening of the dashboard: security headers on every response, and throttling of
failed logins per client.

The Content-Security-Policy allows only this server's own scripts plus the hashes of the
inline scripts Dash writes into its index page (``Dash.csp_hashes()``): no 'unsafe-inline'
and no 'unsafe-eval' for scripts. Plotly needs eval only for its WebGL traces (regl compiles
shaders' glue code with Function), which the dashboard does not draw; the browser tests
(test_security, test_browser) load every page under this policy with a clean console.
Plotly sets inline styles, and its PNG export uses data:/blob: images. Nothing may frame
the page.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flask import Flask, Response

LOGIN_LIMIT = 5  # failed logins per client ...
LOGIN_WINDOW_S = 60.0  # ... within this window lock the client out
LOCKOUT_BASE_S = 30.0  # first lockout; each further one doubles
LOCKOUT_MAX_S = 3600.0


def content_security_policy(inline_script_hashes: Iterable[str]) -> str:
    scripts = " ".join(["'self'", *inline_script_hashes])
    return "; ".join([
        "default-src 'self'", f"script-src {scripts}", "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:", "font-src 'self' data:", "connect-src 'self'",
        "object-src 'none'", "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'"])


def install_security_headers(server: Flask, csp: str | Callable[[], str],
                             behind_tls: bool = False) -> None:
    """CSP, no framing, no referrer (a ?token= URL must not leak), no MIME sniffing, and
    HSTS when the dashboard is served over TLS. Every response, errors and 401/429 included.

    csp may be a function, asked on every response: Dash Pages registers its own inline
    (clientside) callback on the first request, after the app is built, so the policy must
    follow Dash's current inline scripts rather than a list taken at start-up."""
    headers = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
               "X-Content-Type-Options": "nosniff"}
    if behind_tls:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    policy = csp if callable(csp) else (lambda: csp)

    @server.after_request
    def add_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy())
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response


@dataclass
class _Client:
    failures: deque = field(default_factory=deque)
    lockouts: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


class LoginThrottle:
    """After `limit` failed logins within `window_s`, a client is refused for `base_s`,
    doubling with each further lockout up to `max_s`; a success forgives, and so does an
    hour (max_s) without failures. Thread-safe; remembers at most `max_clients` clients."""

    def __init__(self, limit: int = LOGIN_LIMIT, window_s: float = LOGIN_WINDOW_S,
                 base_s: float = LOCKOUT_BASE_S, max_s: float = LOCKOUT_MAX_S,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000):
        self.limit, self.window_s, self.base_s, self.max_s = limit, window_s, base_s, max_s
        self.clock, self.max_clients = clock, max_clients
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Whole seconds the client must still wait; 0 when it may try."""
        with self._lock:
            state = self._clients.get(client)
            wait = state.blocked_until - self.clock() if state else 0.0
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            state = self._clients.get(client) or self._new(client, now)
            if now - state.last_failure > self.max_s:
                state.lockouts = 0
            state.last_failure = now
            state.failures.append(now)
            while state.failures and now - state.failures[0] > self.window_s:
                state.failures.popleft()
            if len(state.failures) >= self.limit:
                state.blocked_until = now + min(self.max_s, self.base_s * 2 ** state.lockouts)
                state.lockouts += 1
                state.failures.clear()

    def succeeded(self, client: str) -> None:
        if client in self._clients:
            with self._lock:
                self._clients.pop(client, None)

    def _new(self, client: str, now: float) -> _Client:
        if len(self._clients) >= self.max_clients:
            idle = [key for key, state in self._clients.items()
                    if state.blocked_until < now and now - state.last_failure > self.window_s]
            for key in idle or list(self._clients)[: self.max_clients // 10 or 1]:
                del self._clients[key]
        state = self._clients[client] = _Client()
        return state
