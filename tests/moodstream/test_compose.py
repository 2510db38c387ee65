"""compose.yaml parses and wires every service to the same Kafka, Redis and topics."""

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
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
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        envs.append((env["MOODSTREAM_TOPIC_PREFIX"], env["MOODSTREAM_REDIS_PREFIX"]))
    assert len(set(envs)) == 1, "all services must agree on topic and key prefixes"


def test_detector_reserves_a_gpu_and_dashboard_requires_credentials():
    services = _compose()["services"]
    devices = services["detector"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    dash = services["dashboard"]
    assert "0.0.0.0" in dash["command"]
    assert {"DASHBOARD_USER", "DASHBOARD_PASSWORD"} <= set(dash["environment"])
