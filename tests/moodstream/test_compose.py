"""compose.yaml parses and wires every service to the same Kafka, Redis and topics; it
restarts what stops, publishes ports on loopback only, protects Redis with a password, and
.dockerignore keeps secrets and local state out of the image."""

import re
import subprocess
import time
from pathlib import Path

import pytest
import redis
import yaml

from moodstream.embedded import free_port, redis_binary

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
SERVICES = ("ingest", "detector", "aggregator", "dashboard")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_infrastructure_is_kraft_kafka_and_redis():
    services = _compose()["services"]
    kafka_env = services["kafka"]["environment"]
    assert "apache/kafka" in services["kafka"]["image"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert services["redis"]["image"].startswith("redis:")


def test_every_service_runs_its_package_against_the_same_servers_and_topics():
    services = _compose()["services"]
    envs = []
    for name in SERVICES:
        svc = services[name]
        assert svc["command"][:3] == ["python", "-m", name]
        assert (Path(COMPOSE.parent) / name / "__main__.py").exists()
        assert set(svc["depends_on"]) == {"kafka", "redis"}
        env = svc["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["REDIS_URL"] == "redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD}@redis:6379/0"
        envs.append((env["MOODSTREAM_TOPIC_PREFIX"], env["MOODSTREAM_REDIS_PREFIX"]))
    assert len(set(envs)) == 1, "all services must agree on topic and key prefixes"


def test_detector_reserves_a_gpu_and_dashboard_requires_credentials():
    services = _compose()["services"]
    devices = services["detector"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    dash = services["dashboard"]
    assert "0.0.0.0" in dash["command"]
    assert {"MOODSTREAM_DASHBOARD_USER", "MOODSTREAM_DASHBOARD_PASSWORD"} <= set(dash["environment"])


def _interpolate_defaults(text: str) -> str:
    """What compose makes of ${VAR:-default} when VAR is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def test_every_service_restarts_unless_stopped():
    for name, service in _compose()["services"].items():
        assert service.get("restart") in ("unless-stopped", "on-failure", "always"), name


def test_published_ports_bind_loopback_unless_the_operator_says_otherwise():
    published = [(name, port) for name, service in _compose()["services"].items()
                 for port in service.get("ports", [])]
    assert {name for name, _ in published} == {"dashboard", "ingest"}
    for name, port in published:
        host_ip, host_port, container_port = _interpolate_defaults(port).split(":")
        assert host_ip == "127.0.0.1", (name, port)
    dashboard = _compose()["services"]["dashboard"]["ports"]
    assert dashboard == ["${DASHBOARD_BIND:-127.0.0.1}:8050:8050"]


def test_frames_retention_is_set_for_every_service():
    services = _compose()["services"]
    for name in SERVICES:
        assert services[name]["environment"]["MOODSTREAM_FRAMES_RETENTION_MS"] == "600000"
    assert services["kafka"]["environment"]["KAFKA_LOG_RETENTION_CHECK_INTERVAL_MS"] == 60000


def test_redis_needs_the_password_and_keeps_it_out_of_argv():
    redis_svc = _compose()["services"]["redis"]
    assert "$$REDIS_PASSWORD" in redis_svc["command"][2]  # expanded in the container, not argv
    assert "requirepass" in redis_svc["command"][2]
    assert redis_svc["environment"]["REDIS_PASSWORD"] == "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
    assert redis_svc["environment"]["REDISCLI_AUTH"] == "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
    assert "PONG" in redis_svc["healthcheck"]["test"][1]


@pytest.mark.integration
def test_the_redis_command_really_starts_a_password_protected_server(tmp_path):
    """compose's own shell line, run against the local valkey-server: only the image's
    entrypoint and the redis user are swapped for the local binary and a temp folder."""
    line = _compose()["services"]["redis"]["command"][2].replace("$$", "$")
    line = line.replace("/tmp/auth.conf", str(tmp_path / "auth.conf"))
    line = line.replace(" && chown redis " + str(tmp_path / "auth.conf"), "")
    port = free_port()
    line = line.replace("docker-entrypoint.sh redis-server",
                        f"{redis_binary()} ") + f" --port {port} --bind 127.0.0.1 --dir {tmp_path}"
    server = subprocess.Popen(["sh", "-c", line], env={"REDIS_PASSWORD": "0a1b2c3d"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = "redis://:0a1b2c3d@127.0.0.1:{}/0".format(port)
        deadline = time.monotonic() + 15
        while True:
            try:
                assert redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "redis did not start"
                time.sleep(0.1)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert oct((tmp_path / "auth.conf").stat().st_mode & 0o777) == "0o600"
    finally:
        server.terminate()
        server.wait(10)


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "config", ".env", "**/*.key", "**/*.pem", "tests"} <= ignored
    # What the image needs is not ignored.
    for needed in ("moodstream", "models", "pyproject.toml", "requirements.lock"):
        assert needed not in ignored
