"""Aggregator counters for Prometheus, served with /healthz and /readyz by the shared
moodstream.health server.

The totals are aggregator.service.Counters, read at scrape time (the service keeps one
set of numbers, not two); dead letters are also counted per reason here, on their way to
the dead-letter sender."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily

from moodstream.deadletter import reason_kind
from moodstream.health import HealthServer

# Counters field -> (exported name without _total, help). `malformed` is exported with
# its reason by AggregatorMetrics.malformed instead.
EXPORTED = {
    "detections": ("aggregator_detections_applied", "Detections applied to Redis (once per frame)"),
    "duplicates": ("aggregator_duplicates", "Detections already applied (redelivered), ignored"),
    "controls": ("aggregator_controls", "Session control events handled"),
    "skipped_frames": ("aggregator_skipped_frames",
                       "Frames the detector skipped or dead-lettered, counted as handled"),
    "stale_frames": ("aggregator_stale_frames", "Of those, live frames read too late"),
    "deadletter_failed": ("aggregator_deadletter_failed", "Dead letters not delivered"),
    "sessions_closed": ("aggregator_sessions_closed", "Sessions closed"),
    "alerts_opened": ("aggregator_alerts_opened", "Negative-sentiment alerts opened"),
    "commits": ("aggregator_commits", "Offset commits"),
}


class _CountersCollector:
    def __init__(self, owner: "AggregatorMetrics"):
        self.owner = owner

    def describe(self):
        return [CounterMetricFamily(name, text) for name, text in EXPORTED.values()]

    def collect(self):
        counters = getattr(self.owner.aggregator, "counters", None)
        for field, (name, text) in EXPORTED.items():
            yield CounterMetricFamily(name, text, value=getattr(counters, field, 0))


class AggregatorMetrics:
    """One registry per instance (not the global one), so tests can build several."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.aggregator = None  # set by watch(); its Counters are read at scrape time
        self.registry.register(_CountersCollector(self))
        self.malformed = Counter("aggregator_malformed", "Malformed messages (dead-lettered "
                                 "unless dead letters are off), by reason", ["reason"],
                                 registry=self.registry)
        self.health = HealthServer("aggregator", self.registry)

    def watch(self, aggregator) -> None:
        self.aggregator = aggregator

    def counting(self, send: Callable | None) -> Callable:
        """The Aggregator's dead-letter callable: counts the reason, then sends (if a
        sender is given; without one the message is only logged and counted)."""
        def deadletter(record, reason: str):
            self.malformed.labels(reason_kind(reason)).inc()
            return send(record, reason) if send is not None else None
        return deadletter

    def ready_when(self, redis_client, consumer: Callable[[], object]) -> None:
        """/readyz: Redis answers, the Kafka consumer exists and holds partitions."""
        self.health.ready_when("redis connected", redis_client.ping)
        self.health.ready_when("kafka connected", lambda: consumer() is not None)
        self.health.ready_when("partitions assigned",
                               lambda: consumer() is not None and bool(consumer().assignment()))
