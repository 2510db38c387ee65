"""Per-camera counters, exported to Prometheus, plus /metrics and /healthz over HTTP."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Enum as PromEnum
from prometheus_client import Histogram

from ingest.publisher import PublishStats
from ingest.source import SourceState, StatusEvent

log = logging.getLogger(__name__)


@dataclass
class CameraCounts:
    read: int = 0
    published: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> frames
    reconnects: int = 0
    state: SourceState | None = None
    last_read_mono: float | None = None  # when the source last gave a frame

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class IngestMetrics(PublishStats):
    """One registry per process (not the global one), so tests can run several."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self.cameras: dict[str, CameraCounts] = {}
        labels = ["camera"]
        self._read = PromCounter("ingest_frames_read", "Frames decoded from the source",
                                 labels, registry=self.registry)
        self._published = PromCounter("ingest_frames_published", "Frames acknowledged by Kafka",
                                      labels, registry=self.registry)
        self._dropped = PromCounter("ingest_frames_dropped", "Frames dropped, by reason",
                                    labels + ["reason"], registry=self.registry)
        self._reconnects = PromCounter("ingest_reconnects", "Source reconnect attempts",
                                       labels, registry=self.registry)
        self._latency = Histogram("ingest_publish_latency_seconds", "Send to broker ack",
                                  labels, registry=self.registry,
                                  buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30))
        self._state = PromEnum("ingest_source_state", "Source state machine", labels,
                               states=[s.value for s in SourceState], registry=self.registry)

    def counts(self, camera_id: str) -> CameraCounts:
        with self._lock:
            return self.cameras.setdefault(camera_id, CameraCounts())

    def read(self, camera_id: str) -> None:
        counts = self.counts(camera_id)
        counts.read += 1
        counts.last_read_mono = time.monotonic()
        self._read.labels(camera_id).inc()

    def published(self, camera_id: str, latency_s: float) -> None:
        self.counts(camera_id).published += 1
        self._published.labels(camera_id).inc()
        self._latency.labels(camera_id).observe(latency_s)

    def dropped(self, camera_id: str, reason: str, count: int = 1) -> None:
        with self._lock:
            self.cameras.setdefault(camera_id, CameraCounts()).dropped[reason] += count
        self._dropped.labels(camera_id, reason).inc(count)

    def reconnect(self, camera_id: str) -> None:
        self.counts(camera_id).reconnects += 1
        self._reconnects.labels(camera_id).inc()

    def status(self, event: StatusEvent) -> None:
        self.counts(event.camera_id).state = event.state
        self._state.labels(event.camera_id).state(event.state.value)

    def health(self) -> tuple[bool, dict]:
        """Healthy while at least one camera is not failed (or none configured yet)."""
        now = time.monotonic()
        with self._lock:
            states = {cam: (c.state.value if c.state else "starting")
                      for cam, c in self.cameras.items()}
            # A hung source shows here as a growing age while its state stays "streaming".
            ages = {cam: round(now - c.last_read_mono, 3) if c.last_read_mono else None
                    for cam, c in self.cameras.items()}
        healthy = not states or any(s != SourceState.FAILED.value for s in states.values())
        return healthy, {"status": "ok" if healthy else "failed", "cameras": states,
                         "last_frame_age_s": ages}


class MetricsServer:
    """GET /metrics (Prometheus text) and GET /healthz (JSON; 503 when every camera failed)."""

    def __init__(self, metrics: IngestMetrics, host: str, port: int):
        self.metrics = metrics
        handler = self._handler_class()
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "MetricsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self):
        metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server naming
                if self.path.startswith("/metrics"):
                    self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path.startswith("/healthz") or self.path.startswith("/health"):
                    healthy, body = metrics.health()
                    self._send(200 if healthy else 503, json.dumps(body).encode(),
                               "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # scrapes are not worth a log line each
                pass

        return Handler
