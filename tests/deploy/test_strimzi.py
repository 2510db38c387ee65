"""The Strimzi Kafka cluster (components/strimzi-cluster) fits what moodstream expects: the
address the services use, KRaft with enough brokers for the topics' replicas, topics made
only by the Topic Operator, frames deleted on time, and only moodstream's clients let in."""

from __future__ import annotations

import pytest

from moodstream import clients
from moodstream.settings import CommonSettings
from moodstream.topics import Topics
from tests.deploy.helpers import KUSTOMIZATIONS, allowed, config_map_data, find, one, rendered
from tests.deploy.test_network import _config_name, other_pod, pod

WITH_CLUSTER = [k for k in KUSTOMIZATIONS if find(rendered(k), "Kafka")]


def test_the_cluster_comes_with_its_overlays():
    assert WITH_CLUSTER == ["overlays/strimzi-cluster", "overlays/full"]
    # it is never deployed without the topics and the client policy of components/strimzi
    assert all(find(rendered(k), "KafkaTopic") for k in WITH_CLUSTER)


def _cluster(kustomization):
    objects = rendered(kustomization)
    (kafka,) = find(objects, "Kafka")
    return objects, kafka, find(objects, "KafkaNodePool")


def _config(kafka) -> dict[str, str]:
    return {key: str(value).lower() for key, value in kafka["spec"]["kafka"]["config"].items()}


@pytest.mark.parametrize("kustomization", WITH_CLUSTER)
def test_the_services_bootstrap_address_is_the_clusters_plain_listener(kustomization):
    objects, kafka, pools = _cluster(kustomization)
    name, namespace = kafka["metadata"]["name"], kafka["metadata"]["namespace"]
    for resource in find(objects, "KafkaTopic") + pools:
        assert resource["metadata"]["labels"]["strimzi.io/cluster"] == name
        assert resource["metadata"]["namespace"] == namespace
    config = config_map_data(objects, "moodstream", _config_name(objects))
    host, _, port = config["KAFKA_BOOTSTRAP_SERVERS"].partition(":")
    assert host == f"{name}-kafka-bootstrap.{namespace}.svc"  # Strimzi's bootstrap Service
    (listener,) = [item for item in kafka["spec"]["kafka"]["listeners"] if item["port"] == int(port)]
    assert listener["type"] == "internal"
    assert listener["tls"] is False and "authentication" not in listener
    assert config["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    for scaled in find(objects, "ScaledObject"):  # KEDA reads the lag from the same brokers
        assert scaled["spec"]["triggers"][0]["metadata"]["bootstrapServers"] == \
            config["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.mark.parametrize("kustomization", WITH_CLUSTER)
def test_kraft_node_pools_hold_every_replica(kustomization):
    objects, kafka, pools = _cluster(kustomization)
    assert "zookeeper" not in kafka["spec"]
    controllers = [p for p in pools if "controller" in p["spec"]["roles"]]
    brokers = [p for p in pools if "broker" in p["spec"]["roles"]]
    quorum = sum(p["spec"]["replicas"] for p in controllers)
    assert quorum >= 3 and quorum % 2 == 1, "a KRaft quorum that survives one lost controller"
    broker_count = sum(p["spec"]["replicas"] for p in brokers)
    replicas = {t["spec"]["replicas"] for t in find(objects, "KafkaTopic")}
    assert broker_count >= max(replicas)
    config = _config(kafka)
    assert int(config["default.replication.factor"]) == max(replicas)
    assert int(config["offsets.topic.replication.factor"]) == max(replicas)  # committed offsets
    for topic in find(objects, "KafkaTopic"):
        assert int(topic["spec"]["config"]["min.insync.replicas"]) == \
            int(config["min.insync.replicas"]) < topic["spec"]["replicas"]
    for pool in pools:
        storage = pool["spec"]["storage"]
        volumes = storage.get("volumes", [storage])
        assert all(v["type"] == "persistent-claim" and v.get("deleteClaim") is False
                   for v in volumes), pool["metadata"]["name"]


@pytest.mark.parametrize("kustomization", WITH_CLUSTER)
def test_topics_exist_only_as_moodstream_declares_them(kustomization):
    """An auto-created topic would keep frames for the broker's default 7 days; the Topic
    Operator is what turns the KafkaTopics into topics; expired frame segments are deleted
    within one frames segment."""
    objects, kafka, _ = _cluster(kustomization)
    config = _config(kafka)
    assert config["auto.create.topics.enable"] == "false"
    assert "topicOperator" in kafka["spec"]["entityOperator"]
    assert "watchedNamespace" not in kafka["spec"]["entityOperator"]["topicOperator"]  # its own
    frames = one(objects, "KafkaTopic", Topics("moodstream").frames)
    assert int(config["log.retention.check.interval.ms"]) <= int(frames["spec"]["config"]["segment.ms"])


def test_brokers_take_the_largest_message_moodstreams_producers_send(monkeypatch):
    captured = {}

    class Recorder:
        def __init__(self, **config):
            captured.update(config)

    monkeypatch.setattr(clients, "KafkaProducer", Recorder)
    clients.kafka_producer(CommonSettings(kafka_bootstrap_servers="127.0.0.1:9"))
    for kustomization in WITH_CLUSTER:
        _, kafka, _ = _cluster(kustomization)
        assert int(_config(kafka)["message.max.bytes"]) >= captured["max_request_size"]


@pytest.mark.parametrize("kustomization", WITH_CLUSTER)
def test_kafka_exporter_watches_moodstreams_groups_and_topics(kustomization):
    import re
    _, kafka, _ = _cluster(kustomization)
    exporter = kafka["spec"]["kafkaExporter"]
    topics = Topics("moodstream")
    for group in ("moodstream.detector", "moodstream.aggregator"):  # cli._group's names
        assert re.fullmatch(exporter["groupRegex"], group)
    assert all(re.fullmatch(exporter["topicRegex"], name) for name in topics.all())


def _broker_ingress_policy(kafka) -> dict:
    """The NetworkPolicy Strimzi's operator makes for the brokers from the listeners'
    networkPolicyPeers (one ingress rule per listener port)."""
    meta = kafka["metadata"]
    return {"metadata": {"name": f"{meta['name']}-network-policy-kafka",
                         "namespace": meta["namespace"]},
            "spec": {"podSelector": {"matchLabels": {"strimzi.io/cluster": meta["name"],
                                                     "strimzi.io/kind": "Kafka"}},
                     "policyTypes": ["Ingress"],
                     "ingress": [{"ports": [{"protocol": "TCP", "port": listener["port"]}],
                                  "from": listener["networkPolicyPeers"]}
                                 for listener in kafka["spec"]["kafka"]["listeners"]]}}


@pytest.mark.parametrize("kustomization", WITH_CLUSTER)
def test_only_moodstreams_kafka_clients_and_keda_reach_the_brokers(kustomization):
    objects, kafka, _ = _cluster(kustomization)
    meta = kafka["metadata"]
    broker = {"namespace": meta["namespace"],
              "namespace_labels": {"kubernetes.io/metadata.name": meta["namespace"]},
              "labels": {"strimzi.io/cluster": meta["name"], "strimzi.io/kind": "Kafka",
                         "strimzi.io/name": f"{meta['name']}-kafka", "strimzi.io/broker-role": "true"}}
    policies = find(objects, "NetworkPolicy") + [_broker_ingress_policy(kafka)]
    for service in ("ingest", "detector", "aggregator"):
        assert allowed(policies, pod(objects, f"moodstream-{service}"), broker, 9092), service
    assert not allowed(policies, pod(objects, "moodstream-dashboard"), broker, 9092)
    keda = {"namespace": "keda", "namespace_labels": {"kubernetes.io/metadata.name": "keda"},
            "labels": {"app.kubernetes.io/name": "keda-operator"}}
    assert allowed(policies, keda, broker, 9092)
    assert not allowed(policies, other_pod(), broker, 9092)
    assert not allowed(policies, other_pod("moodstream"), broker, 9092)
