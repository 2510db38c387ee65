"""Kafka and Redis client factories with the project's defaults and one-line errors."""

from __future__ import annotations

import logging
import time

import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from moodstream.settings import CommonSettings, redact
from moodstream.topics import Topics

log = logging.getLogger(__name__)


class ServiceUnavailable(RuntimeError):
    """Kafka or Redis cannot be reached; the message names which and where."""


def _retry(what: str, where: str, factory, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return factory()
        except (KafkaError, redis.ConnectionError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise ServiceUnavailable(
                    f"cannot reach {what} at {redact(where)} ({type(exc).__name__}); "
                    f"is it running?") from None
            time.sleep(0.5)


def _bootstrap_ms(settings: CommonSettings) -> int:
    return int(settings.connect_timeout_s * 1000)


def kafka_producer(settings: CommonSettings, **overrides) -> KafkaProducer:
    servers = settings.require_kafka()
    config = dict(bootstrap_servers=servers.split(","), acks="all", linger_ms=5,
                  bootstrap_timeout_ms=_bootstrap_ms(settings),
                  retries=5, max_request_size=8 * 1024 * 1024, request_timeout_ms=15000,
                  client_id="moodstream")
    config.update(overrides)
    return _retry("Kafka", servers, lambda: KafkaProducer(**config), settings.connect_timeout_s)


def kafka_consumer(settings: CommonSettings, group_id: str, topics: list[str],
                   **overrides) -> KafkaConsumer:
    """A consumer that never auto-commits: callers commit after handing work on."""
    servers = settings.require_kafka()
    timeout = settings.kafka_session_timeout_ms
    config = dict(bootstrap_servers=servers.split(","), group_id=group_id,
                  bootstrap_timeout_ms=_bootstrap_ms(settings),
                  enable_auto_commit=False, auto_offset_reset="earliest",
                  session_timeout_ms=timeout, heartbeat_interval_ms=max(500, timeout // 3),
                  max_poll_interval_ms=max(60000, timeout * 10), fetch_max_bytes=64 * 1024 * 1024,
                  max_partition_fetch_bytes=16 * 1024 * 1024, client_id=f"moodstream-{group_id}")
    config.update(overrides)

    def make():
        consumer = KafkaConsumer(**config)
        consumer.subscribe(topics)
        return consumer

    return _retry("Kafka", servers, make, settings.connect_timeout_s)


def ensure_topics(settings: CommonSettings, topics: Topics | None = None) -> None:
    """Create the project's topics if missing (idempotent; harmless on a managed cluster)."""
    topics = topics or Topics(settings.topic_prefix)
    servers = settings.require_kafka()
    admin = _retry("Kafka", servers,
                   lambda: KafkaAdminClient(bootstrap_servers=servers.split(","),
                                            bootstrap_timeout_ms=_bootstrap_ms(settings),
                                            client_id="moodstream-admin"),
                   settings.connect_timeout_s)
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(name, settings.kafka_partitions, 1)
                  for name in topics.all() if name not in existing]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def redis_client(settings: CommonSettings, **overrides) -> redis.Redis:
    """overrides go to redis.Redis (e.g. retry=, socket_timeout= for an interactive reader)."""
    url = settings.require_redis()
    config = dict(decode_responses=True, socket_connect_timeout=5, health_check_interval=30)
    config.update(overrides)
    try:
        client = redis.Redis.from_url(url, **config)
    except ValueError as exc:
        raise ServiceUnavailable(f"invalid REDIS_URL {redact(url)}: {exc}") from None
    _retry("Redis", url, client.ping, settings.connect_timeout_s)
    return client
