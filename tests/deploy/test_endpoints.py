"""The probes' paths are served by each service's own health server (moodstream.health,
built here as each service builds it, on a free port, without Kafka or Redis): /healthz is
200 JSON at once, /readyz 503 naming what is not ready until the service's checks pass,
then 200. tests/moodstream/test_health.py runs the same against real processes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from tests.deploy.helpers import SERVICES, moodstream_containers, rendered

PROBED = sorted({(c["name"], c[probe]["httpGet"]["path"])
                 for _w, c in moodstream_containers(rendered("overlays/full"))
                 for probe in ("startupProbe", "livenessProbe", "readinessProbe")})


def _get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def _health(service: str):
    """(HealthServer, make_ready, names of its readiness checks) as the service builds it."""
    if service == "ingest":
        from ingest.metrics import IngestMetrics, health_server
        from ingest.source import SourceState, StatusEvent
        metrics = IngestMetrics()

        def ready():
            metrics.kafka_connected = True
            metrics.status(StatusEvent("cam", SourceState.STREAMING, None, time.time(), None))
        return health_server(metrics), ready, {"kafka connected", "camera streaming"}
    if service == "detector":
        from detector.metrics import DetectorMetrics
        state = SimpleNamespace(consumer=None, assigned=[], pipeline=None)
        metrics = DetectorMetrics().ready_when(state)
        return metrics.health, lambda: vars(state).update(consumer=object(), assigned=[0],
                                                          pipeline=object()), \
            {"kafka connected", "partitions assigned", "model loaded"}
    redis_up = SimpleNamespace(up=False)
    ping = lambda: redis_up.up  # noqa: E731 - a stand-in for redis.Redis.ping
    if service == "aggregator":
        from aggregator.metrics import AggregatorMetrics
        metrics, consumer = AggregatorMetrics(), SimpleNamespace(current=None)
        metrics.ready_when(SimpleNamespace(ping=ping), lambda: consumer.current)

        def ready():
            redis_up.up = True
            consumer.current = SimpleNamespace(assignment=lambda: {("t", 0)})
        return metrics.health, ready, {"redis connected", "kafka connected", "partitions assigned"}
    from moodstream.health import HealthServer  # the dashboard's hook in dashboard/__main__.py
    return HealthServer("dashboard").ready_when("redis connected", ping), \
        lambda: setattr(redis_up, "up", True), {"redis connected"}


def test_every_service_is_probed_on_healthz_and_readyz():
    assert {(s, p) for s in SERVICES for p in ("/healthz", "/readyz")} == set(PROBED)


@pytest.mark.parametrize("service, path", PROBED)
def test_probe_path_is_a_health_endpoint(service, path):
    server, make_ready, checks = _health(service)
    server.start("127.0.0.1", 0)
    try:
        before = _get(server.port, path)
        make_ready()
        after = _get(server.port, path)
        metrics_status, _, metrics = _get(server.port, "/metrics")
    finally:
        server.stop()
    assert metrics_status == 200 and "# HELP" in metrics
    for status, content_type, body in (before, after):
        assert content_type == "application/json" and body != metrics, (service, path, body)
    if path == "/healthz":  # alive: 200 whatever the checks say
        assert before[0] == after[0] == 200
        return
    status, _, body = before
    assert status == 503 and set(json.loads(body)["not_ready"]) == checks, (service, body)
    status, _, body = after
    assert status == 200 and json.loads(body)["not_ready"] == [], (service, body)
