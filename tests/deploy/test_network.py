"""NetworkPolicies, evaluated: only the aggregator and the dashboard reach Redis, only the
services that use Kafka reach it, and the rest of what deploy/networkpolicies.yaml says."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.helpers import (DEPLOY, KUSTOMIZATIONS, SERVICES, allowed, config_map_data,
                                  find, one, rendered, workloads)

OUTSIDE = {"ip": "203.0.113.10"}  # an address outside the cluster (TEST-NET-3)


def pod(objects, name):
    workload = next(w for w in workloads(objects) if w["metadata"]["name"] == name)
    namespace = workload["metadata"]["namespace"]
    return {"namespace": namespace, "labels": workload["spec"]["template"]["metadata"]["labels"],
            "namespace_labels": {"kubernetes.io/metadata.name": namespace}}


def other_pod(namespace="elsewhere"):
    return {"namespace": namespace, "labels": {"app": "other"},
            "namespace_labels": {"kubernetes.io/metadata.name": namespace}}


def kafka_ports(objects) -> set[int]:
    servers = config_map_data(objects, "moodstream", _config_name(objects))["KAFKA_BOOTSTRAP_SERVERS"]
    return {int(server.rsplit(":", 1)[1]) for server in servers.split(",")}


def _config_name(objects):
    return next(o["metadata"]["name"] for o in find(objects, "ConfigMap")
                if o["metadata"]["name"].startswith("moodstream-config"))


def kafka_destination(objects):
    topics = find(objects, "KafkaTopic")
    if not topics:
        return OUTSIDE
    namespace = topics[0]["metadata"]["namespace"]
    return {"namespace": namespace, "namespace_labels": {"kubernetes.io/metadata.name": namespace},
            "labels": {"strimzi.io/cluster": topics[0]["metadata"]["labels"]["strimzi.io/cluster"],
                       "strimzi.io/kind": "Kafka", "strimzi.io/name": "moodstream-kafka"}}


def redis_destination(objects):
    if find(objects, "StatefulSet", "moodstream-redis"):
        service = one(objects, "Service", "moodstream-redis")
        return pod(objects, "moodstream-redis"), service["spec"]["ports"][0]["port"]
    secrets = yaml.safe_load_all((DEPLOY / "examples" / "secrets.yaml").read_text())
    url = next(s for s in secrets if s["metadata"]["name"] == "moodstream-redis")["stringData"]["url"]
    return OUTSIDE, urlsplit(url).port or 6379


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_only_kafka_clients_reach_kafka(kustomization):
    objects = rendered(kustomization)
    policies = find(objects, "NetworkPolicy")
    destination = kafka_destination(objects)
    for port in kafka_ports(objects):
        for service in SERVICES:
            reach = allowed(policies, pod(objects, f"moodstream-{service}"), destination, port)
            assert reach == (service != "dashboard"), (service, port)
        if destination is not OUTSIDE:  # the clients reach that cluster only
            assert not allowed(policies, pod(objects, "moodstream-detector"), OUTSIDE, port)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_only_the_aggregator_and_dashboard_reach_redis(kustomization):
    objects = rendered(kustomization)
    policies = find(objects, "NetworkPolicy")
    destination, port = redis_destination(objects)
    for service in SERVICES:
        reach = allowed(policies, pod(objects, f"moodstream-{service}"), destination, port)
        assert reach == (service in ("aggregator", "dashboard")), service
    if destination is not OUTSIDE:  # nobody else in the cluster either
        assert not allowed(policies, other_pod(), destination, port)
        assert not allowed(policies, other_pod("moodstream"), destination, port)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_only_ingest_reaches_cameras(kustomization):
    objects = rendered(kustomization)
    policies = find(objects, "NetworkPolicy")
    for port in (554, 8554, 80):
        for service in SERVICES:
            reach = allowed(policies, pod(objects, f"moodstream-{service}"), OUTSIDE, port)
            assert reach == (service == "ingest"), (service, port)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_dns_metrics_and_dashboard_traffic(kustomization):
    objects = rendered(kustomization)
    policies = find(objects, "NetworkPolicy")
    dns = {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"},
           "namespace_labels": {"kubernetes.io/metadata.name": "kube-system"}}
    prometheus = other_pod("monitoring")
    for service in SERVICES:
        me = pod(objects, f"moodstream-{service}")
        assert allowed(policies, me, dns, 53, "UDP")
        assert not allowed(policies, me, OUTSIDE, 53, "UDP")
        assert allowed(policies, prometheus, me, 9100)
        assert not allowed(policies, other_pod(), me, 9100)
        assert allowed(policies, OUTSIDE, me, 8050) == (service == "dashboard")


def test_a_policy_always_selects_every_pod():
    """Default deny: every moodstream pod is selected for both directions."""
    objects = rendered("overlays/full")
    deny = one(objects, "NetworkPolicy", "moodstream-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    for workload in workloads(objects):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in deny["spec"]["podSelector"]["matchLabels"].items())
