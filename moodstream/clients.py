"""Kafka and Redis client factories with the project's defaults and one-line errors."""

from __future__ import annotations

import logging
import time

import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
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


class _MaskSecret(logging.Filter):
    """kafka-python's admin client logs its whole configuration at DEBUG, SASL password
    included: mask the secret in any record of the loggers this is attached to."""

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: the handler reports it as usual
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, ()
        return True


_MASK = _MaskSecret()
for _name in ("kafka.admin.client", "kafka.producer.kafka", "kafka.consumer.group",
              "kafka.net.connection"):
    logging.getLogger(_name).addFilter(_MASK)


def _kafka_base(settings: CommonSettings) -> dict:
    """What every Kafka client gets: bootstrap servers and timeout, TLS and SASL."""
    servers = settings.require_kafka()
    security = settings.kafka_security()
    if security.get("sasl_plain_password"):
        _MASK.secrets.add(security["sasl_plain_password"])
    return dict(bootstrap_servers=servers.split(","),
                bootstrap_timeout_ms=int(settings.connect_timeout_s * 1000), **security)


def kafka_producer(settings: CommonSettings, **overrides) -> KafkaProducer:
    servers = settings.require_kafka()
    config = dict(_kafka_base(settings), acks="all", linger_ms=5,
                  retries=5, max_request_size=8 * 1024 * 1024, request_timeout_ms=15000,
                  client_id="moodstream")
    config.update(overrides)
    return _retry("Kafka", servers, lambda: KafkaProducer(**config), settings.connect_timeout_s)


def kafka_consumer(settings: CommonSettings, group_id: str, topics: list[str],
                   **overrides) -> KafkaConsumer:
    """A consumer that never auto-commits: callers commit after handing work on."""
    servers = settings.require_kafka()
    timeout = settings.kafka_session_timeout_ms
    config = dict(_kafka_base(settings), group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest",
                  session_timeout_ms=timeout, heartbeat_interval_ms=max(500, timeout // 3),
                  max_poll_interval_ms=max(60000, timeout * 10), fetch_max_bytes=64 * 1024 * 1024,
                  max_partition_fetch_bytes=16 * 1024 * 1024, client_id=f"moodstream-{group_id}")
    config.update(overrides)

    def make():
        consumer = KafkaConsumer(**config)
        consumer.subscribe(topics)
        return consumer

    return _retry("Kafka", servers, make, settings.connect_timeout_s)


def topic_configs(settings: CommonSettings, topics: Topics) -> dict[str, dict[str, str]]:
    """Per-topic configs set at creation: frames (pixels) are deleted after
    frames_retention_ms, in one-minute segments so deletion is not held back by a long
    open segment; the other topics keep topic_retention_ms in hourly segments."""
    def delete_after(retention_ms: int, segment_ms: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(retention_ms),
                "segment.ms": str(min(segment_ms, retention_ms))}

    configs = {name: delete_after(settings.topic_retention_ms, 3_600_000) for name in topics.all()}
    configs[topics.frames] = delete_after(settings.frames_retention_ms, 60_000)
    return configs


def kafka_admin(settings: CommonSettings) -> KafkaAdminClient:
    servers = settings.require_kafka()
    return _retry("Kafka", servers,
                  lambda: KafkaAdminClient(**_kafka_base(settings), client_id="moodstream-admin"),
                  settings.connect_timeout_s)


def ensure_topics(settings: CommonSettings, topics: Topics | None = None) -> None:
    """Create the project's topics if missing, with their retention (idempotent; harmless
    on a managed cluster). An existing topic is left as it is, with a warning when it keeps
    frames longer than frames_retention_ms."""
    topics = topics or Topics(settings.topic_prefix)
    configs = topic_configs(settings, topics)
    admin = kafka_admin(settings)
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(name, settings.kafka_partitions, 1, topic_configs=configs[name])
                  for name in topics.all() if name not in existing]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        if topics.frames in existing:
            _warn_if_frames_outlive(admin, topics.frames, settings.frames_retention_ms)
    finally:
        admin.close()


def _warn_if_frames_outlive(admin: KafkaAdminClient, topic: str, wanted_ms: int) -> None:
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                           config_filter="all")
        value = described["topic"][topic].get("retention.ms", {}).get("value")
    except (KafkaError, KeyError, TypeError):
        return  # a broker that cannot say: nothing to warn about
    if value is None or not value.lstrip("-").isdigit() or not 0 <= int(value) <= wanted_ms:
        log.warning("existing topic %s keeps frames for retention.ms=%s, longer than "
                    "MOODSTREAM_FRAMES_RETENTION_MS=%d: set retention.ms on it "
                    "(kafka-configs.sh --alter)", topic, value or "unset", wanted_ms)


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
