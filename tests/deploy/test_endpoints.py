"""The probes' paths are served by the services' own HTTP servers (started here on a free
port, without Kafka). What a service does not serve yet is an expected failure that names
it; it turns into a pass when the endpoint lands."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(service: str):
    """(port, stop) of the service's health/metrics server, or None when it has none."""
    if service == "ingest":
        from ingest.metrics import IngestMetrics, MetricsServer
        server = MetricsServer(IngestMetrics(), "127.0.0.1", 0).start()
        return server.port, server.stop
    if service == "detector":
        from detector.metrics import DetectorMetrics
        metrics = DetectorMetrics()
        port = _free_port()
        metrics.serve(port, "127.0.0.1")  # 0 would mean "off"
        return port, metrics.close
    return None


def test_every_service_is_probed_on_healthz_and_readyz():
    assert {(s, p) for s in SERVICES for p in ("/healthz", "/readyz")} == set(PROBED)


@pytest.mark.parametrize("service, path", PROBED)
def test_probe_path_is_a_health_endpoint(service, path):
    served = _serve(service)
    if served is None:
        pytest.xfail(f"{service} runs no HTTP server for /metrics, /healthz, /readyz yet")
    port, stop = served
    try:
        status, content_type, body = _get(port, path)
        metrics_status, _, metrics = _get(port, "/metrics")
    finally:
        stop()
    assert metrics_status == 200
    if service == "ingest" and path == "/healthz":
        assert status == 200 and content_type == "application/json", (status, body)
        return
    if status == 404:
        pytest.xfail(f"{service} does not serve {path} yet (404)")
    if "# HELP" in body or body == metrics:
        pytest.xfail(f"{service} answers {path} with its metrics page (any path does): "
                     "not a health check yet")
    assert status == 200, (service, path, status, body)
