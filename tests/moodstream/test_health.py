"""/metrics, /healthz and /readyz (moodstream.health) over real HTTP: the server itself, and
each service started as its own process against the embedded Kafka (Tansu) and Redis
(Valkey): alive at once, 503 naming what is not ready, 200 once it is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from moodstream.embedded import EmbeddedRedis, free_port
from moodstream.health import HealthServer
from moodstream.settings import SettingsError

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "demo" / "clips" / "store-entrance.mp4"


def get(port: int, path: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            status, body, kind = reply.status, reply.read().decode(), reply.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        status, body, kind = exc.code, exc.read().decode(), exc.headers["Content-Type"]
    return status, json.loads(body) if kind == "application/json" else body


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: process exited {proc.returncode}: {proc.stdout.read()}")
        try:
            value = predicate()
        except (urllib.error.URLError, ConnectionError):
            value = None
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


# ---------------------------------------------------------------- the server itself

def test_readyz_names_what_is_not_ready_until_every_check_passes():
    state = {"kafka": False, "model": False}
    server = HealthServer("svc").ready_when("kafka connected", lambda: state["kafka"])
    server.ready_when("model loaded", lambda: state["model"])
    server.ready_when("broken check", lambda: 1 / 0 if not state["model"] else True)
    server.start("127.0.0.1", 0)
    try:
        assert get(server.port, "/healthz") == (200, {"service": "svc", "status": "ok"})
        status, body = get(server.port, "/readyz")
        assert status == 503
        assert body["not_ready"] == ["kafka connected", "model loaded", "broken check"]
        state["kafka"] = True
        assert get(server.port, "/readyz")[1]["not_ready"] == ["model loaded", "broken check"]
        state["model"] = True
        status, body = get(server.port, "/readyz")
        assert (status, body["status"], body["not_ready"]) == (200, "ready", [])
        status, text = get(server.port, "/metrics")
        assert status == 200 and "process_cpu_seconds_total" in text
        assert get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_port_zero_is_off_and_a_taken_port_is_one_line_settings_error():
    class Settings:
        metrics_host, metrics_port = "127.0.0.1", 0
    assert HealthServer("svc").start_from(Settings()).port is None
    taken = HealthServer("other").start("127.0.0.1", 0)
    try:
        Settings.metrics_port = taken.port
        with pytest.raises(SettingsError, match=f"cannot serve metrics on 127.0.0.1:{taken.port}"):
            HealthServer("svc").start_from(Settings())
    finally:
        taken.stop()


# ---------------------------------------------------------------- the services

def start(env: dict, service: str, *args: str, **extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(env, **extra, **{f"MOODSTREAM_{service.upper()}_METRICS_PORT": str(port)})
    proc = subprocess.Popen([sys.executable, "-m", service, *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stdout.close()


def first_answer(port: int, proc, what: str) -> tuple[int, dict]:
    """The first /readyz answer (the server is up before the service is ready)."""
    return wait_for(lambda: get(port, "/readyz"), 60, f"{what} /readyz", proc)


def becomes_ready(port: int, proc, what: str, timeout: float = 90) -> dict:
    return wait_for(lambda: (lambda r: r[0] == 200 and r[1])(get(port, "/readyz")),
                    timeout, f"{what} ready", proc)


@pytest.mark.integration
def test_detector_is_ready_once_connected_assigned_and_model_loaded(stack_env, unique_prefix):
    # A group of its own: the suite's earlier detectors (some killed on purpose) joined the
    # default group on this shared broker, and a join waits for their sessions to expire.
    proc, port = start(stack_env, "detector", MOODSTREAM_DETECTOR_GROUP_ID=f"{unique_prefix}.det")
    try:
        status, body = first_answer(port, proc, "detector")
        # The group join alone takes session_timeout/2 on Tansu: never ready at once.
        assert status == 503 and "partitions assigned" in body["not_ready"], body
        assert get(port, "/healthz")[0] == 200
        body = becomes_ready(port, proc, "detector")
        assert body["checks"] == {"kafka connected": True, "partitions assigned": True,
                                  "model loaded": True}
        status, text = get(port, "/metrics")
        assert status == 200 and "detector_inference_calls_total" in text
    finally:
        stop(proc)
    assert proc.returncode == 0


@pytest.mark.integration
def test_aggregator_is_ready_once_redis_and_partitions_are_there(stack_env):
    proc, port = start(stack_env, "aggregator")
    try:
        status, body = first_answer(port, proc, "aggregator")
        assert status == 503 and "partitions assigned" in body["not_ready"], body
        assert get(port, "/healthz")[0] == 200
        body = becomes_ready(port, proc, "aggregator")
        assert body["checks"] == {"redis connected": True, "kafka connected": True,
                                  "partitions assigned": True}
        status, text = get(port, "/metrics")
        assert status == 200 and "aggregator_alerts_opened_total 0.0" in text
        assert "aggregator_detections_applied_total 0.0" in text
    finally:
        stop(proc)
    assert proc.returncode == 0


@pytest.mark.integration
def test_ingest_is_ready_while_a_camera_streams(stack_env):
    dead = f"http://127.0.0.1:{free_port()}/video"  # nothing listens: never streams
    proc, port = start(stack_env, "ingest", "--source", dead, "--camera-id", "dead",
                       MOODSTREAM_INGEST_BACKOFF_INITIAL_S="0.2",
                       MOODSTREAM_INGEST_PURPOSE="health check test")
    try:
        status, body = wait_for(lambda: (lambda r: "dead" in r[1]["cameras"] and r)(
            get(port, "/healthz")), 60, "ingest /healthz", proc)
        assert status == 200 and body["cameras"]["dead"] in ("connecting", "reconnecting"), body
        status, body = get(port, "/readyz")
        assert (status, body["not_ready"]) == (503, ["camera streaming"]), body
    finally:
        stop(proc)
    proc, port = start(stack_env, "ingest", "--source", str(CLIP), "--camera-id", "door",
                       "--loop")
    try:
        body = becomes_ready(port, proc, "ingest")
        assert body["checks"] == {"kafka connected": True, "camera streaming": True}
        assert get(port, "/healthz")[1]["cameras"] == {"door": "streaming"}
    finally:
        stop(proc)


@pytest.mark.integration
def test_dashboard_is_ready_while_redis_answers(stack_env):
    with EmbeddedRedis() as own_redis:  # this test stops it; the session's stays up
        proc, port = start(stack_env, "dashboard", "--port", str(free_port()),
                           REDIS_URL=own_redis.url)
        try:
            body = becomes_ready(port, proc, "dashboard")
            assert body["checks"] == {"redis connected": True}
            own_redis.stop()
            status, body = wait_for(lambda: (lambda r: r[0] == 503 and r)(get(port, "/readyz")),
                                    30, "dashboard unready", proc)
            assert body["not_ready"] == ["redis connected"]
            assert get(port, "/healthz")[0] == 200  # alive: Redis is not the process
        finally:
            stop(proc)
