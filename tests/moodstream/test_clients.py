"""Kafka client factories: TLS/SASL settings from the environment reach every client
(producer, consumer, admin), the password never reaches a log, and topics are created on
the real embedded broker with their retention. The Redis factory: redis+cluster:// URLs
(the real cluster is in test_redis_cluster.py)."""

from __future__ import annotations

import logging
import time

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from redis.connection import SSLConnection, parse_url

from moodstream import clients
from moodstream.embedded import free_port
from moodstream.settings import CommonSettings, SettingsError
from moodstream.topics import Topics

SECURITY_ENV = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_PLAIN_USERNAME",
                "KAFKA_SASL_PLAIN_PASSWORD", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
                "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE",
                "FRAMES_RETENTION_MS", "TOPIC_RETENTION_MS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in SECURITY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"MOODSTREAM_{name}", raising=False)


@pytest.fixture
def tls_files(tmp_path):
    files = {}
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN PLACEHOLDER-----\n")
        files[name] = str(tmp_path / name)
    return files


@pytest.fixture
def sasl_ssl_env(monkeypatch, tls_files):
    """The environment an operator sets for a SASL_SSL cluster, in both spellings."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("MOODSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_PLAIN_USERNAME", "moodstream")
    monkeypatch.setenv("MOODSTREAM_KAFKA_SASL_PLAIN_PASSWORD", "kafka-hunter2")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", tls_files["ca.pem"])
    monkeypatch.setenv("MOODSTREAM_KAFKA_SSL_CERTFILE", tls_files["client.pem"])
    monkeypatch.setenv("KAFKA_SSL_KEYFILE", tls_files["client.key"])
    return tls_files


class Recorder:
    """Stands in for a kafka-python client class: records the keyword arguments it got."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self

    def subscribe(self, topics):
        self.topics = topics

    def list_topics(self):
        return []

    def create_topics(self, new_topics):
        self.created = new_topics

    def close(self):
        pass


def test_security_settings_reach_producer_consumer_and_admin(monkeypatch, sasl_ssl_env):
    recorders = {name: Recorder() for name in ("KafkaProducer", "KafkaConsumer", "KafkaAdminClient")}
    for name, recorder in recorders.items():
        monkeypatch.setattr(clients, name, recorder)
    settings = CommonSettings.load()
    clients.kafka_producer(settings)
    clients.kafka_consumer(settings, "g1", ["t.frames"])
    clients.ensure_topics(settings, Topics("t"))
    expected = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "moodstream", "sasl_plain_password": "kafka-hunter2",
                "ssl_cafile": sasl_ssl_env["ca.pem"], "ssl_certfile": sasl_ssl_env["client.pem"],
                "ssl_keyfile": sasl_ssl_env["client.key"], "bootstrap_servers": ["k1:9093", "k2:9093"]}
    for name, recorder in recorders.items():
        [kwargs] = recorder.calls
        assert {k: kwargs.get(k) for k in expected} == expected, name


def test_plaintext_default_adds_no_security_arguments(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(clients, "KafkaProducer", recorder)
    clients.kafka_producer(CommonSettings.load(kafka_bootstrap_servers="k:9092"))
    [kwargs] = recorder.calls
    assert not {k for k in kwargs if k.startswith(("security", "sasl", "ssl"))}


def test_password_is_a_secret_in_the_settings_object(sasl_ssl_env):
    settings = CommonSettings.load()
    assert "kafka-hunter2" not in repr(settings) and "kafka-hunter2" not in str(settings.model_dump())


@pytest.mark.parametrize("env, words", [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, ("needs KAFKA_SASL_MECHANISM",)),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
     ("KAFKA_SSL_CAFILE", "/nonexistent/ca.pem")),
])
def test_settings_that_cannot_work_are_one_line_errors(monkeypatch, env, words):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        clients.kafka_producer(CommonSettings.load(kafka_bootstrap_servers="k:9092"))
    assert all(word in str(error.value) for word in words) and "\n" not in str(error.value)


def test_unknown_protocol_or_mechanism_is_refused_at_load(monkeypatch):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(SettingsError, match="kafka_security_protocol"):
        CommonSettings.load()
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "GSSAPI")
    with pytest.raises(SettingsError, match="kafka_sasl_mechanism"):
        CommonSettings.load()


def test_topic_configs_keep_frames_ten_minutes_by_default(monkeypatch):
    topics = Topics("p")
    configs = clients.topic_configs(CommonSettings.load(), topics)
    assert configs[topics.frames] == {"cleanup.policy": "delete", "retention.ms": "600000",
                                      "segment.ms": "60000"}
    for name in (topics.detections, topics.control, topics.deadletter):
        assert configs[name] == {"cleanup.policy": "delete", "retention.ms": "86400000",
                                 "segment.ms": "3600000"}
    monkeypatch.setenv("MOODSTREAM_FRAMES_RETENTION_MS", "30000")
    configs = clients.topic_configs(CommonSettings.load(), topics)
    assert configs[topics.frames]["retention.ms"] == configs[topics.frames]["segment.ms"] == "30000"


def _described(bootstrap: str, topic: str) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                           config_filter="all")
    finally:
        admin.close()
    return {name: entry["value"] for name, entry in described["topic"][topic].items()}


@pytest.mark.integration
def test_real_broker_creates_topics_with_their_retention(kafka_server, unique_prefix, monkeypatch):
    monkeypatch.setenv("MOODSTREAM_FRAMES_RETENTION_MS", "120000")
    settings = CommonSettings.load(kafka_bootstrap_servers=kafka_server.bootstrap,
                                   topic_prefix=unique_prefix)
    topics = Topics(unique_prefix)
    clients.ensure_topics(settings)
    frames = _described(kafka_server.bootstrap, topics.frames)
    assert (frames["retention.ms"], frames["segment.ms"], frames["cleanup.policy"]) == \
        ("120000", "60000", "delete")
    detections = _described(kafka_server.bootstrap, topics.detections)
    assert (detections["retention.ms"], detections["segment.ms"]) == ("86400000", "3600000")
    clients.ensure_topics(settings)  # idempotent: the topics exist now


@pytest.mark.integration
def test_an_existing_frames_topic_without_retention_is_reported(kafka_server, unique_prefix,
                                                               caplog):
    settings = CommonSettings.load(kafka_bootstrap_servers=kafka_server.bootstrap,
                                   topic_prefix=unique_prefix)
    admin = clients.kafka_admin(settings)
    try:
        from kafka.admin import NewTopic
        admin.create_topics([NewTopic(Topics(unique_prefix).frames, 1, 1)])  # an older deployment's
    finally:
        admin.close()
    with caplog.at_level(logging.WARNING, logger="moodstream.clients"):
        clients.ensure_topics(settings)
    assert f"existing topic {unique_prefix}.frames keeps frames" in caplog.text
    assert "MOODSTREAM_FRAMES_RETENTION_MS=600000" in caplog.text


@pytest.mark.integration
def test_sasl_password_never_reaches_a_log_or_an_error(kafka_server, unique_prefix, monkeypatch,
                                                       caplog):
    # kafka-python's admin client logs its whole configuration at DEBUG; the embedded broker
    # speaks no SASL, so the attempt then fails: both must stay free of the password.
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_PLAIN_USERNAME", "moodstream")
    monkeypatch.setenv("KAFKA_SASL_PLAIN_PASSWORD", "kafka-hunter2")
    settings = CommonSettings.load(kafka_bootstrap_servers=kafka_server.bootstrap,
                                   topic_prefix=unique_prefix, connect_timeout_s=1)
    # The kafka logger's own level too: a service's setup_logging() run in this process
    # (another test) quiets it, and this test must see the DEBUG record to prove anything.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="kafka"), \
            pytest.raises(clients.ServiceUnavailable) as error:
        clients.ensure_topics(settings)
    assert "Starting KafkaAdminClient with configuration" in caplog.text
    assert "'sasl_plain_username': 'moodstream'" in caplog.text  # the record is there ...
    assert "kafka-hunter2" not in caplog.text  # ... without the password
    assert "cannot reach Kafka" in str(error.value) and "kafka-hunter2" not in str(error.value)


@pytest.mark.parametrize("url, first, others", [
    ("redis+cluster://r1:7000,r2:7001,r3:7002", "redis://r1:7000", [("r2", 7001), ("r3", 7002)]),
    ("redis+cluster://:s3cret@r1:7000,r2/0", "redis://:s3cret@r1:7000/0", [("r2", 6379)]),
    ("rediss+cluster://app:s3cret@[::1]:7000,r2:7001?ssl_cert_reqs=none",
     "rediss://app:s3cret@[::1]:7000?ssl_cert_reqs=none", [("r2", 7001)]),
])
def test_cluster_url_lists_every_node_and_keeps_credentials_and_options(url, first, others):
    got_first, more = clients.cluster_url(url)
    assert got_first == first and [(n.host, n.port) for n in more] == others
    tls = parse_url(got_first).get("connection_class") is SSLConnection
    assert tls == url.startswith("rediss+")


def test_a_plain_redis_url_is_not_a_cluster():
    assert clients.cluster_url("redis://:pw@r1:6379/2") is None
    assert clients.cluster_url("rediss://r1:6380") is None


@pytest.mark.parametrize("url", ["redis+cluster://:hunter2@r1:7000/3",  # a cluster has db 0
                                 "redis+cluster://:hunter2@r1:port",
                                 "redis+cluster://:hunter2@r1:7000,,r2:7001"])
def test_a_malformed_cluster_url_is_one_line_without_the_password(url):
    with pytest.raises(clients.ServiceUnavailable) as error:
        clients.redis_client(CommonSettings.load(redis_url=url))
    message = str(error.value)
    assert message.startswith("invalid REDIS_URL") and "\n" not in message
    assert "hunter2" not in message


def test_an_unreachable_cluster_is_one_line_without_the_password():
    port = free_port()
    settings = CommonSettings.load(redis_url=f"redis+cluster://:hunter2@127.0.0.1:{port}",
                                   connect_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(clients.ServiceUnavailable) as error:
        clients.redis_client(settings)
    assert time.monotonic() - started < 15
    assert str(error.value).startswith("cannot reach Redis at redis+cluster://***@127.0.0.1")
    assert "hunter2" not in str(error.value)


def test_a_redis_prefix_with_a_brace_is_refused_at_load(monkeypatch):
    # "{" in the prefix would become every key's hash tag: one cluster slot for everything.
    monkeypatch.setenv("MOODSTREAM_REDIS_PREFIX", "ms{x}")
    with pytest.raises(SettingsError, match="MOODSTREAM_REDIS_PREFIX"):
        CommonSettings.load()
