"""One HTTP server per service process: /metrics, /healthz and /readyz on one port.

- `/metrics`: the service's Prometheus registry (plus process CPU/memory/fds).
- `/healthz`: the process is alive and serving: always 200, JSON; a service may add
  details (ingest: camera states and the age of each camera's last frame).
- `/readyz`: 200 only when every readiness check the service registered passes, else 503
  with a JSON body naming what is not ready ("kafka connected", "partitions assigned",
  "model loaded", "redis connected", ...).

Each service builds one HealthServer, registers its checks with `ready_when()` and starts
it with `start_from(settings)`: `metrics_port` 0 (the default) means no server at all.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest

from moodstream.settings import SettingsError

log = logging.getLogger(__name__)

Check = Callable[[], bool]


class HealthServer:
    def __init__(self, service: str, registry: CollectorRegistry | None = None,
                 details: Callable[[], dict] | None = None):
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()
        try:
            ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, RSS, fds
        except ValueError:  # already registered on this registry
            pass
        self.details = details
        self._checks: dict[str, Check] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ checks

    def ready_when(self, name: str, check: Check) -> "HealthServer":
        """/readyz answers 200 only while check() is true; a check that raises is false."""
        self._checks[name] = check
        return self

    def readiness(self) -> tuple[bool, dict]:
        results = {}
        for name, check in self._checks.items():
            try:
                results[name] = bool(check())
            except Exception as exc:  # noqa: BLE001 - a failing check means "not ready"
                log.debug("readiness check %r failed: %s", name, exc)
                results[name] = False
        not_ready = [name for name, ok in results.items() if not ok]
        return not not_ready, {"service": self.service,
                               "status": "not ready" if not_ready else "ready",
                               "not_ready": not_ready, "checks": results}

    def liveness(self) -> dict:
        body = {"service": self.service, "status": "ok"}
        if self.details is not None:
            body.update(self.details())
        return body

    # ------------------------------------------------------------ server

    @property
    def port(self) -> int | None:
        return self._httpd.server_address[1] if self._httpd else None

    def start(self, host: str, port: int) -> "HealthServer":
        """Listen on host:port (0 = any free port) in a daemon thread."""
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name=f"{self.service}-health", daemon=True)
        self._thread.start()
        return self

    def start_from(self, settings) -> "HealthServer":
        """Start on settings.metrics_host:metrics_port unless the port is 0 (off). A port
        that cannot be bound is a configuration mistake: SettingsError, one line."""
        host, port = settings.metrics_host, settings.metrics_port
        if not port:
            return self
        try:
            self.start(host, port)
        except OSError as exc:
            raise SettingsError(f"cannot serve metrics on {host}:{port}: "
                                f"{exc.strerror or exc}") from None
        log.info("metrics on http://%s:%d/metrics, health on /healthz and /readyz", host, self.port)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def _handler(server: HealthServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server naming
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/metrics":
                self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._json(200, server.liveness())
            elif path == "/readyz":
                ready, body = server.readiness()
                self._json(200 if ready else 503, body)
            else:
                self._send(404, b"not found: /metrics, /healthz, /readyz\n", "text/plain")

        def _json(self, code: int, body: dict) -> None:
            self._send(code, json.dumps(body).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # probes and scrapes are not worth a log line each
            pass

    return Handler
