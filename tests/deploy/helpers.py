"""Shared pieces of the deploy/ tests: rendering, the services' settings, schemas, policies."""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import json
import os
from pathlib import Path
from typing import Iterator

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCHEMAS = DEPLOY / "schemas"
KUSTOMIZATIONS = ["base", "overlays/gpu", "overlays/strimzi", "overlays/strimzi-cluster",
                  "overlays/redis", "overlays/full"]
KUBERNETES_VERSIONS = ["1.29.0", "1.37.0"]  # the oldest cluster we claim, and the newest schema

# container name -> (the module `python -m` runs, its settings class)
SERVICES = {
    "ingest": ("ingest", "ingest.config", "IngestSettings"),
    "detector": ("detector", "detector.settings", "DetectorSettings"),
    "aggregator": ("aggregator", "aggregator.settings", "AggregatorSettings"),
    "dashboard": ("dashboard", "dashboard.settings", "DashboardSettings"),
}


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def renderer():
    return load_module("moodstream_deploy_render", DEPLOY / "tools" / "render.py")


@functools.cache
def shard_script():
    return load_module("moodstream_deploy_shard", DEPLOY / "base" / "ingest" / "shard.py")


@functools.cache
def _rendered(kustomization: str) -> tuple:
    return tuple(renderer().render(DEPLOY / kustomization))


def rendered(kustomization: str) -> list[dict]:
    """The objects of deploy/<kustomization>, a fresh copy each call."""
    return copy.deepcopy(list(_rendered(kustomization)))


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind
            and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict) -> dict | None:
    template = (obj.get("spec") or {}).get("template")
    return template["spec"] if template else None


def workloads(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def moodstream_containers(objects: list[dict]) -> Iterator[tuple[dict, dict]]:
    """(workload, container) for every container that runs a moodstream service."""
    for workload in workloads(objects):
        for container in pod_spec(workload)["containers"]:
            if container["name"] in SERVICES:
                yield workload, container


def config_map_data(objects: list[dict], namespace: str | None, name: str) -> dict:
    found = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name
             and o["metadata"].get("namespace") == namespace]
    assert len(found) == 1, f"ConfigMap {name} in {namespace}: {len(found)} found"
    return found[0].get("data", {})


def container_env(objects: list[dict], workload: dict, container: dict,
                  secret_value: str = "secret") -> dict[str, str]:
    """The environment the container starts with: envFrom ConfigMaps, then env (literal
    values, ConfigMap keys; Secret keys become `secret_value`)."""
    namespace = workload["metadata"].get("namespace")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        assert "configMapRef" in source, f"{container['name']}: only ConfigMaps in envFrom"
        env.update(config_map_data(objects, namespace, source["configMapRef"]["name"]))
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "configMapKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = config_map_data(objects, namespace, ref["name"])[ref["key"]]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = secret_value
        else:
            raise AssertionError(f"{container['name']}: unsupported env source {item}")
    return env


# ---------------------------------------------------------------- settings

def settings_class(container_name: str):
    _, module, cls = SERVICES[container_name]
    return getattr(importlib.import_module(module), cls)


def env_aliases(cls) -> dict[str, str]:
    """Every environment variable name the settings class reads (upper case) -> its field."""
    names: dict[str, str] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
        for choice in choices:
            if isinstance(choice, str):
                names[choice.upper()] = field_name
    return names


@contextlib.contextmanager
def clean_environ(cls, env: dict[str, str]):
    """os.environ without any variable the settings class reads, plus `env`."""
    saved = dict(os.environ)
    read = set(env_aliases(cls))
    prefix = (cls.model_config.get("env_prefix") or "").upper()
    try:
        for key in list(os.environ):
            if key.upper() in read or (prefix and key.upper().startswith(prefix)):
                del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_from_env(container_name: str, env: dict[str, str]):
    cls = settings_class(container_name)
    with clean_environ(cls, env):
        return cls()


# ---------------------------------------------------------------- CRD schemas

def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> JSON schema of the vendored CRDs (deploy/schemas/README.md)."""
    kafka_topic = yaml.safe_load((SCHEMAS / "strimzi" / "043-Crd-kafkatopic.yaml").read_text())
    versions = {v["name"]: v["schema"]["openAPIV3Schema"] for v in kafka_topic["spec"]["versions"]}
    return {
        ("keda.sh/v1alpha1", "ScaledObject"):
            json.loads((SCHEMAS / "keda" / "scaledobject-v1alpha1.json").read_text()),
        ("monitoring.coreos.com/v1", "ServiceMonitor"):
            json.loads((SCHEMAS / "prometheus-operator" / "servicemonitor-v1.json").read_text()),
        ("kafka.strimzi.io/v1", "KafkaTopic"): versions["v1"],
    }


def recorded_verdicts() -> dict:
    """Verdicts of Strimzi's npm models on the Kafka and KafkaNodePool resources, which have
    no vendorable schema (deploy/schemas/record_strimzi_verdicts.py writes them)."""
    return json.loads((REPO / "tests" / "deploy" / "data" /
                       "strimzi_cluster_verdicts.json").read_text())


def strict(schema):
    """The schema with additionalProperties: false wherever it lists properties and neither
    allows extra ones nor preserves unknown fields (kubectl --validate=strict)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: (value if key in ("enum", "required", "default") else strict(value))
              for key, value in schema.items()}
    if "properties" in schema:
        result["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and \
                not schema.get("x-kubernetes-preserve-unknown-fields"):
            result["additionalProperties"] = False
    return result


# ---------------------------------------------------------------- network policies

def _match_selector(selector: dict | None, labels: dict) -> bool:
    """Kubernetes label selector semantics; {} matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer: dict, endpoint: dict, policy_namespace: str) -> bool:
    """endpoint: {"namespace", "namespace_labels", "labels"} for a pod, or {"ip": ...}."""
    if "ipBlock" in peer:
        return "ip" in endpoint  # only "anything outside the cluster" is modelled
    if "ip" in endpoint:
        return False
    if "namespaceSelector" in peer:
        if not _match_selector(peer["namespaceSelector"], endpoint["namespace_labels"]):
            return False
    elif endpoint["namespace"] != policy_namespace:
        return False
    return "podSelector" not in peer or _match_selector(peer["podSelector"], endpoint["labels"])


def _port_matches(rule_ports: list | None, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for item in rule_ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        if "port" not in item:
            return True
        start, end = item["port"], item.get("endPort", item["port"])
        if isinstance(start, int) and start <= port <= end:
            return True
    return False


def allowed(policies: list[dict], source: dict, destination: dict, port: int,
            protocol: str = "TCP") -> bool:
    """Whether NetworkPolicies let `source` open a connection to `destination`:port.
    Both ends are endpoints as in _peer_matches; a pod has "namespace" and "labels"."""
    def selecting(pod: dict, direction: str):
        return [p for p in policies if "namespace" in pod
                and p["metadata"].get("namespace") == pod["namespace"]
                and direction in p["spec"].get("policyTypes", ["Ingress"])
                and _match_selector(p["spec"].get("podSelector"), pod["labels"])]

    egress = selecting(source, "Egress")
    if egress and not any(
            _port_matches(rule.get("ports"), port, protocol)
            and (not rule.get("to") or any(_peer_matches(peer, destination, p["metadata"]["namespace"])
                                           for peer in rule["to"]))
            for p in egress for rule in p["spec"].get("egress") or []):
        return False
    ingress = selecting(destination, "Ingress")
    if ingress and not any(
            _port_matches(rule.get("ports"), port, protocol)
            and (not rule.get("from") or any(_peer_matches(peer, source, p["metadata"]["namespace"])
                                             for peer in rule["from"]))
            for p in ingress for rule in p["spec"].get("ingress") or []):
        return False
    return True
