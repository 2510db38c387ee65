"""Detector counters and stage timings for Prometheus, served with /healthz and /readyz by
the shared moodstream.health server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from moodstream.health import HealthServer
from moodstream.schemas import DetectionMessage

_MS_BUCKETS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000)


class DetectorMetrics:
    """One registry per service object (not the global one), so tests can build several."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("detector_frames", "Frames with a detection produced", ["camera"],
                              registry=r)
        self.faces = Counter("detector_faces", "Faces classified", ["camera"], registry=r)
        self.excluded = Counter("detector_excluded_faces", "Faces dropped by ROI masks", ["camera"],
                                registry=r)
        self.deadletters = Counter("detector_deadletters", "Frames sent to the dead-letter topic",
                                   ["reason"], registry=r)
        self.inference_calls = Counter("detector_inference_calls", "Batched emotion model calls",
                                       registry=r)
        self.stage_ms = Histogram("detector_stage_ms", "Per-frame stage time (ms)", ["stage"],
                                  buckets=_MS_BUCKETS, registry=r)
        self.health = HealthServer("detector", self.registry)

    def observe(self, message: DetectionMessage) -> None:
        self.frames.labels(message.camera_id).inc()
        self.faces.labels(message.camera_id).inc(len(message.faces))
        self.excluded.labels(message.camera_id).inc(message.excluded_faces)
        for stage in ("decode_ms", "detect_ms", "classify_ms", "e2e_ms"):
            self.stage_ms.labels(stage[:-3]).observe(getattr(message.timing, stage))

    def ready_when(self, service) -> "DetectorMetrics":
        """/readyz: connected to Kafka, partitions assigned, model loaded (a DetectorService)."""
        self.health.ready_when("kafka connected", lambda: service.consumer is not None)
        self.health.ready_when("partitions assigned", lambda: bool(service.assigned))
        self.health.ready_when("model loaded", lambda: service.pipeline is not None)
        return self

    def serve(self, port: int, host: str) -> None:
        """Start /metrics, /healthz, /readyz on host:port; 0 = off."""
        if port:
            self.health.start(host, port)

    def close(self) -> None:
        self.health.stop()
