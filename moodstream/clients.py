"""Kafka and Redis client factories with the project's defaults and one-line errors."""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable
from urllib.parse import urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import parse_url
from redis.exceptions import NoScriptError, RedisClusterException
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from moodstream.settings import CommonSettings, redact
from moodstream.topics import Topics

log = logging.getLogger(__name__)


class ServiceUnavailable(RuntimeError):
    """Kafka or Redis cannot be reached; the message names which and where."""


# What a Redis call can raise when Redis fails: a RedisCluster that reaches no node at all
# raises RedisClusterException, which is not a RedisError.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)


def _retry(what: str, where: str, factory, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return factory()
        except (KafkaError, redis.ConnectionError, RedisClusterException, OSError) as exc:
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


ASSIGNMENTS = ("group", "all")


def kafka_consumer(settings: CommonSettings, group_id: str, topics: list[str],
                   assign: str = "group", listener=None, **overrides) -> KafkaConsumer:
    """A consumer that never auto-commits: callers commit after handing work on.

    assign="group" (the default, for long-running services): subscribe as a member of the
    consumer group `group_id`, so several workers share the partitions; the first poll
    waits for the group join (Tansu completes it after session_timeout_ms / 2, ~3 s).
    `listener` gets the rebalance callbacks.

    assign="all" (a one-shot run with ONE consumer per group, e.g. `moodstream analyze`
    on its own embedded broker): every partition of `topics` is assigned directly, no
    join, and each starts from the group's committed offset (auto_offset_reset when
    none). Offsets are still committed to `group_id` (a commit needs no membership), so
    a consumer that dies before its commit is redelivered those records by the next one.
    Never run it beside group members or another "all" consumer of the same group: they
    would all read every partition. A partition added while it runs is not picked up.
    """
    if assign not in ASSIGNMENTS:
        raise ValueError(f"assign must be one of {ASSIGNMENTS}, not {assign!r}")
    servers = settings.require_kafka()
    timeout = settings.kafka_session_timeout_ms
    config = dict(_kafka_base(settings), group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest",
                  session_timeout_ms=timeout, heartbeat_interval_ms=max(500, timeout // 3),
                  max_poll_interval_ms=max(60000, timeout * 10), fetch_max_bytes=64 * 1024 * 1024,
                  max_partition_fetch_bytes=16 * 1024 * 1024, client_id=f"moodstream-{group_id}")
    config.update(overrides)

    def make():
        consumer = KafkaConsumer(**config)
        try:
            if assign == "all":
                assign_all(consumer, topics, settings.connect_timeout_s)
            elif listener is not None:
                consumer.subscribe(topics, listener=listener)
            else:
                consumer.subscribe(topics)
        except BaseException:
            consumer.close(autocommit=False)
            raise
        return consumer

    return _retry("Kafka", servers, make, settings.connect_timeout_s)


def assign_all(consumer: KafkaConsumer, topics: list[str], timeout_s: float = 15.0) -> dict:
    """Assign every partition of `topics` and seek each to the group's committed offset
    (the beginning or end, by auto_offset_reset, when none). Returns {TopicPartition:
    committed offset or None}. A topic still without partitions in the metadata (just
    created) is asked for again until timeout_s, then KafkaTimeoutError."""
    deadline = time.monotonic() + timeout_s
    partitions = []
    for topic in topics:
        found = consumer.partitions_for_topic(topic)
        while not found:
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(f"no partitions of topic {topic} in the metadata")
            time.sleep(0.05)
            found = consumer.partitions_for_topic(topic)
        partitions += [TopicPartition(topic, p) for p in sorted(found)]
    consumer.assign(partitions)
    committed = {tp: consumer.committed(tp, timeout_ms=max(1000, int(1000 * (deadline - time.monotonic()))))
                 for tp in partitions}
    fresh = [tp for tp, offset in committed.items() if offset is None]
    for tp, offset in committed.items():
        if offset is not None:
            consumer.seek(tp, offset)
    if fresh:
        if consumer.config["auto_offset_reset"] == "latest":
            consumer.seek_to_end(*fresh)
        else:
            consumer.seek_to_beginning(*fresh)
    log.info("assigned all %d partitions of %s (group %s) without a group join; from %s",
             len(partitions), ", ".join(topics), consumer.config["group_id"],
             ", ".join(f"{tp.topic}[{tp.partition}]@{'start' if o is None else o}"
                       for tp, o in committed.items()))
    return committed


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


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_url(url: str) -> tuple[str, list[ClusterNode]] | None:
    """``redis+cluster://[user:password@]host:port[,host:port...][/0][?options]`` (or
    rediss+cluster, TLS) as what RedisCluster takes: the plain redis:// or rediss:// URL
    of the first node, credentials, path and options included, and the other nodes as
    more startup nodes. None for any other scheme; ValueError for a malformed one."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in CLUSTER_SCHEMES:
        return None
    userinfo, at, tail = rest.rpartition("@")
    hosts_end = min((i for i in (tail.find("/"), tail.find("?")) if i >= 0), default=len(tail))
    hosts, suffix = tail[:hosts_end].split(","), tail[hosts_end:]
    nodes = []
    for host in hosts:
        parts = urlsplit(f"//{host}")
        if not host or not parts.hostname:
            raise ValueError("every node needs a host (host:port, comma-separated)")
        nodes.append(ClusterNode(parts.hostname, parts.port or 6379))  # port: ValueError if bad
    first = f"{CLUSTER_SCHEMES[scheme.lower()]}://{userinfo}{at}{hosts[0]}{suffix}"
    if parse_url(first).get("db", 0) != 0:  # also ValueError for a bad option value
        raise ValueError("a Redis Cluster has only database 0")
    return first, nodes[1:]


def redis_client(settings: CommonSettings, **overrides) -> redis.Redis | RedisCluster:
    """overrides go to redis.Redis (e.g. retry=, socket_timeout= for an interactive reader).

    A ``redis+cluster://`` (``rediss+cluster://``) REDIS_URL gives a RedisCluster, which
    learns the other nodes and the slot map from the ones listed."""
    url = settings.require_redis()
    config = dict(decode_responses=True, socket_connect_timeout=5, health_check_interval=30)
    config.update(overrides)
    try:
        cluster = cluster_url(url)
        client = redis.Redis.from_url(url, **config) if cluster is None else None
    except ValueError as exc:
        raise ServiceUnavailable(f"invalid REDIS_URL {redact(url)}: {exc}") from None
    if cluster is not None:  # a RedisCluster connects as it is made
        return _retry("Redis", url, lambda: redis_from_url(url, **config),
                      settings.connect_timeout_s)
    _retry("Redis", url, client.ping, settings.connect_timeout_s)
    return client


def redis_from_url(url: str, **config) -> redis.Redis | RedisCluster:
    """A client for a REDIS_URL, plain or ``redis+cluster://``, without retries: for
    callers (worker health) that must never wait on Redis. A cluster connects as it is
    made, so this may raise REDIS_ERRORS; a malformed URL raises ValueError."""
    config.setdefault("decode_responses", True)
    cluster = cluster_url(url)
    if cluster is None:
        return redis.Redis.from_url(url, **config)
    first, more = cluster
    return RedisCluster(url=first, startup_nodes=more, **config)


def script_call(script: Script, keys: list, args: list) -> Callable:
    """A run_pipeline command that runs `script` as a raw EVALSHA: redis-py blocks
    pipe.evalsha() on a cluster pipeline, and its plain pipeline would ask SCRIPT EXISTS
    before every execute. On a cluster the keys route it (one slot, or redis-py raises);
    run_pipeline loads a script the server lacks."""
    def queue(pipe) -> None:
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    queue.script = script
    return queue


def run_pipeline(client: redis.Redis | RedisCluster, commands: Iterable[Callable]) -> list:
    """Queue each command (a callable that queues ONE command on the pipeline it gets:
    script_call(...) for a script) on one non-transactional pipeline, run it and return
    the replies in order; the first error reply raises.

    A server or cluster node that lacks a script (first use, a restart, a failover)
    answers NOSCRIPT and did not run it: the script is loaded (on every primary of a
    cluster) and only those commands run again, so nothing runs twice. They then run
    after the rest of the pipeline: a command must not read what a script queued before
    it writes."""
    commands = list(commands)
    replies = _execute(client, commands)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    for script in {commands[i].script for i in missing}:
        client.script_load(script.script)
    for i, reply in zip(missing, _execute(client, [commands[i] for i in missing])):
        replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _execute(client, commands: list) -> list:
    if not commands:
        return []
    pipe = client.pipeline(transaction=False)
    for queue in commands:
        queue(pipe)
    return pipe.execute(raise_on_error=False)
