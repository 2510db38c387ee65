"""Per-camera counters exported to Prometheus, served with /healthz and /readyz by the
shared moodstream.health server."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Enum as PromEnum
from prometheus_client import Histogram

from ingest.publisher import PublishStats
from ingest.source import SourceState, StatusEvent
from moodstream.health import HealthServer

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
        self.kafka_connected = False  # set once the producer is up (readiness)
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

    def streaming(self) -> bool:
        """At least one camera is delivering frames (readiness)."""
        with self._lock:
            return any(c.state is SourceState.STREAMING for c in self.cameras.values())

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


def health_server(metrics: IngestMetrics) -> HealthServer:
    """The shared /metrics, /healthz, /readyz server with ingest's registry and checks:
    ready once the producer is connected and a camera is streaming."""
    server = HealthServer("ingest", metrics.registry, details=lambda: metrics.health()[1])
    server.ready_when("kafka connected", lambda: metrics.kafka_connected)
    server.ready_when("camera streaming", metrics.streaming)
    return server


class MetricsServer:
    """ingest.service's handle on health_server(): bound by start(), closed by stop()."""

    def __init__(self, metrics: IngestMetrics, host: str, port: int):
        self._server, self._address = health_server(metrics), (host, port)

    @property
    def port(self) -> int | None:
        return self._server.port

    def start(self) -> "MetricsServer":
        self._server.start(*self._address)
        return self

    def stop(self) -> None:
        self._server.stop()
