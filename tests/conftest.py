"""Shared fixtures: real embedded Kafka (Tansu) and Redis (Valkey) on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared"))
VIDEOS = SHARED / "videos"
FER = SHARED / "datasets" / "fer2013"


@pytest.fixture(scope="session")
def kafka_server():
    from moodstream.embedded import EmbeddedKafka
    with EmbeddedKafka() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server():
    from moodstream.embedded import EmbeddedRedis
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def unique_prefix() -> str:
    """Topic prefix unique to one test, so tests sharing a broker never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def stack_env(kafka_server, redis_server, unique_prefix) -> dict[str, str]:
    """Environment that points services at the embedded servers, isolated per test."""
    db = 1 + (hash(unique_prefix) % 14)
    env = dict(os.environ)
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka_server.bootstrap,
               REDIS_URL=f"redis://{redis_server.host}:{redis_server.port}/{db}",
               MOODSTREAM_TOPIC_PREFIX=unique_prefix, MOODSTREAM_REDIS_PREFIX=unique_prefix,
               PYTHONUNBUFFERED="1")
    return env


def require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (set MOODSTREAM_SHARED to the shared/ folder)")
    return path


@contextlib.contextmanager
def redis_namespace(server, db: int):
    """(client, prefix, url): a fresh key prefix on one database of the shared test Redis;
    every key under it is deleted afterwards."""
    import redis
    prefix = f"t{uuid.uuid4().hex[:8]}"
    url = f"redis://{server.host}:{server.port}/{db}"
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        yield client, prefix, url
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()
