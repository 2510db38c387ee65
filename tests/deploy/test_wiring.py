"""The manifests are wired to the code: env names the settings read, the values they parse
to, ports, probes, consumer groups and topics, partitions, Secrets, volumes, security,
resources and the Grafana dashboard's metric names. Everything compared is computed from
the services' code, not copied into this file."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import threading
import tomllib
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from pydantic import SecretStr

from moodstream.clients import topic_configs
from moodstream.topics import Topics
from tests.deploy.helpers import (DEPLOY, KUSTOMIZATIONS, REPO, SERVICES, _match_selector,
                                  container_env, env_aliases, find, moodstream_containers,
                                  one, pod_spec, rendered, settings_class, settings_from_env,
                                  workloads)

SECRET = "https://user:pass@secret.example:443/x"  # stands in for every Secret value


def service_settings(objects, workload, container):
    return settings_from_env(container["name"],
                             container_env(objects, workload, container, secret_value=SECRET))


def container_of(objects, service):
    found = [(w, c) for w, c in moodstream_containers(objects) if c["name"] == service]
    assert len(found) == 1, f"{service}: {len(found)} containers"
    return found[0]


# ---------------------------------------------------------------- env and settings

@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_env_name_is_read_by_the_services_settings(kustomization):
    objects = rendered(kustomization)
    unknown = []
    for workload, container in moodstream_containers(objects):
        names = set(env_aliases(settings_class(container["name"])))
        env = container_env(objects, workload, container)
        unknown += [f"{container['name']}: {name}" for name in env if name.upper() not in names]
    assert not unknown, "env names no settings field reads:\n" + "\n".join(unknown)


def _same(parsed, raw: str) -> bool:
    if isinstance(parsed, SecretStr):
        parsed = parsed.get_secret_value()
    if isinstance(parsed, Enum):
        parsed = parsed.value
    if isinstance(parsed, bool):
        return parsed == (raw.strip().lower() in ("1", "true", "yes", "on"))
    if isinstance(parsed, (int, float)):
        return float(raw) == float(parsed)
    return str(parsed) == raw


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_env_value_reaches_its_setting(kustomization):
    """Each service's settings, built from exactly the environment its pod gets, hold the
    values the manifests give (so every variable is really read, and parses)."""
    objects = rendered(kustomization)
    for workload, container in moodstream_containers(objects):
        env = container_env(objects, workload, container, secret_value=SECRET)
        aliases = env_aliases(settings_class(container["name"]))
        settings = settings_from_env(container["name"], env)
        for name, raw in env.items():
            field = aliases[name.upper()]
            assert _same(getattr(settings, field), raw), \
                f"{container['name']}: {name}={raw!r} gave {field}={getattr(settings, field)!r}"
        if container["name"] == "dashboard":
            settings.check_access()  # binds 0.0.0.0: it refuses to start without credentials


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_each_service_runs_its_own_module(kustomization):
    for workload, container in moodstream_containers(rendered(kustomization)):
        command = container["command"] + container.get("args", [])
        if "--" in command:  # ingest: the shard wrapper execs the rest
            command = command[command.index("--") + 1:]
        assert command[:3] == ["python", "-m", SERVICES[container["name"]][0]], command


# ---------------------------------------------------------------- ports and probes

def _named_port(container, name):
    ports = [p for p in container.get("ports", []) if p.get("name") == name]
    assert len(ports) == 1, f"{container['name']}: no single port named {name}"
    return ports[0]["containerPort"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_probes_ask_healthz_and_readyz_on_the_metrics_port(kustomization):
    for _workload, container in moodstream_containers(rendered(kustomization)):
        _named_port(container, "metrics")
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            get = container[probe]["httpGet"]
            assert (get["path"], get["port"]) == (path, "metrics"), (container["name"], probe)


@pytest.mark.parametrize("service", sorted(SERVICES))
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_metrics_port_is_the_one_the_service_listens_on(kustomization, service):
    """The container port named `metrics` is the port the service's settings end up with:
    their default where it is set (non-zero), else the value the manifest gives; and the
    service listens on all addresses, so the kubelet and Prometheus reach it."""
    objects = rendered(kustomization)
    workload, container = container_of(objects, service)
    cls = settings_class(service)
    settings = service_settings(objects, workload, container)
    default = cls.model_fields["metrics_port"].default
    assert settings.metrics_port != 0, f"{service}: metrics port off"
    if default:
        assert settings.metrics_port == default, f"{service}: the manifest moves the port off its default"
    assert _named_port(container, "metrics") == settings.metrics_port
    if "metrics_host" in cls.model_fields:
        assert ipaddress.ip_address(settings.metrics_host).is_unspecified, settings.metrics_host
    if service == "dashboard":
        assert _named_port(container, "http") == settings.port
        assert ipaddress.ip_address(settings.host).is_unspecified


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_services_select_one_workload_and_target_its_ports(kustomization):
    objects = rendered(kustomization)
    for service in find(objects, "Service"):
        selected = [w for w in workloads(objects)
                    if _match_selector({"matchLabels": service["spec"]["selector"]},
                                       w["spec"]["template"]["metadata"]["labels"])]
        assert len(selected) == 1, service["metadata"]["name"]
        names = {p.get("name") for c in pod_spec(selected[0])["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, (service["metadata"]["name"], port)
        if selected[0]["kind"] == "StatefulSet":
            assert selected[0]["spec"]["serviceName"] == service["metadata"]["name"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_service_monitor_scrapes_every_service(kustomization):
    objects = rendered(kustomization)
    monitor = one(objects, "ServiceMonitor", "moodstream")
    endpoints = {(e["port"], e.get("path", "/metrics")) for e in monitor["spec"]["endpoints"]}
    assert endpoints == {("metrics", "/metrics")}
    for workload, container in moodstream_containers(objects):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        scraped = [s for s in find(objects, "Service")
                   if _match_selector(monitor["spec"]["selector"], s["metadata"]["labels"])
                   and _match_selector({"matchLabels": s["spec"]["selector"]}, labels)
                   and any(p["name"] == "metrics" for p in s["spec"]["ports"])]
        assert len(scraped) == 1, container["name"]


# ---------------------------------------------------------------- Kafka: KEDA and topics

class _Subscribed(Exception):
    pass


def _subscription(service: str, settings) -> tuple[str, list[str]]:
    """(group id, topics) the service's own start-up code passes to the Kafka consumer."""
    seen = {}

    def fake_consumer(_settings, group_id, topics, **_kwargs):
        seen.update(group=group_id, topics=list(topics))
        raise _Subscribed

    if service == "detector":
        from detector import service as module
        with mock.patch.object(module, "ensure_topics"), \
                mock.patch.object(module, "kafka_consumer", fake_consumer), \
                mock.patch.object(module.DetectorService, "new_producer", lambda self: mock.MagicMock()):
            with pytest.raises(_Subscribed):
                module.DetectorService(settings).connect()
    else:
        import aggregator.__main__ as module
        with mock.patch.object(module, "redis_client", return_value=mock.MagicMock()), \
                mock.patch.object(module, "ensure_topics"), \
                mock.patch.object(module, "kafka_producer", return_value=mock.MagicMock()), \
                mock.patch.object(module, "kafka_consumer", fake_consumer):
            with pytest.raises(_Subscribed):
                module.serve(settings, threading.Event())
    return seen["group"], seen["topics"]


@pytest.mark.parametrize("service", ["detector", "aggregator"])
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_keda_scales_on_the_lag_of_the_services_own_group_and_topic(kustomization, service):
    objects = rendered(kustomization)
    workload, container = container_of(objects, service)
    settings = service_settings(objects, workload, container)
    group, topics = _subscription(service, settings)
    prefix_topics = Topics(settings.topic_prefix)
    main_topic = prefix_topics.frames if service == "detector" else prefix_topics.detections
    assert topics[0] == main_topic  # the per-frame stream; the aggregator also reads control

    scaled = [s for s in find(objects, "ScaledObject")
              if s["spec"]["scaleTargetRef"]["name"] == workload["metadata"]["name"]]
    assert len(scaled) == 1 and workload["kind"] == "Deployment"
    assert scaled[0]["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert "replicas" not in workload["spec"], "KEDA owns the replica count"
    (trigger,) = scaled[0]["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == group == settings.group_id
    assert meta["topic"] == main_topic
    assert meta["bootstrapServers"] == settings.kafka_bootstrap_servers
    assert meta["offsetResetPolicy"] == "earliest"  # as moodstream.clients.kafka_consumer
    assert getattr(settings, "assign", "group") == "group", "KEDA scaling needs a consumer group"
    # The maximum replica count is the partition count: more members would idle.
    assert scaled[0]["spec"]["maxReplicaCount"] == settings.kafka_partitions
    assert scaled[0]["spec"]["minReplicaCount"] >= 1


@pytest.mark.parametrize("service", ["detector", "aggregator"])
def test_consumer_groups_are_scoped_by_the_topic_prefix_like_the_launcher(service):
    """`moodstream demo`/`analyze` name groups PREFIX.SERVICE (moodstream.cli._group), so
    deployments that share a broker never share a group; the manifests do the same."""
    from moodstream import cli
    objects = rendered("base")
    settings = service_settings(objects, *container_of(objects, service))
    stack = SimpleNamespace(settings=settings)
    flag, value = cli._group(stack, service)
    assert flag == "--group-id" and settings.group_id == value


@pytest.mark.parametrize("kustomization", [k for k in KUSTOMIZATIONS if "strimzi" in k or "full" in k])
def test_strimzi_topics_are_the_ones_moodstream_creates(kustomization):
    objects = rendered(kustomization)
    settings = service_settings(objects, *container_of(objects, "ingest"))
    topics = Topics(settings.topic_prefix)
    wanted = topic_configs(settings, topics)
    kafka_topics = {t["spec"].get("topicName", t["metadata"]["name"]): t
                    for t in find(objects, "KafkaTopic")}
    assert set(kafka_topics) == set(topics.all())
    cluster = {t["metadata"]["labels"]["strimzi.io/cluster"] for t in kafka_topics.values()}
    namespace = {t["metadata"]["namespace"] for t in kafka_topics.values()}
    assert len(cluster) == 1 and len(namespace) == 1
    (cluster,), (namespace,) = cluster, namespace
    host, _, port = settings.kafka_bootstrap_servers.partition(":")
    assert host == f"{cluster}-kafka-bootstrap.{namespace}.svc" and port == "9092"
    for name, topic in kafka_topics.items():
        assert topic["spec"]["partitions"] == settings.kafka_partitions, name
        config = {k: str(v) for k, v in topic["spec"]["config"].items()}
        assert {k: config.get(k) for k in wanted[name]} == wanted[name], name
        assert topic["spec"]["replicas"] >= 3
        assert int(config["min.insync.replicas"]) < topic["spec"]["replicas"]


# ---------------------------------------------------------------- ingest sharding

@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_ingest_shards_are_its_replicas(kustomization):
    objects = rendered(kustomization)
    workload, container = container_of(objects, "ingest")
    assert workload["kind"] == "StatefulSet"
    command = container["command"]
    wrapper, rest = command[:command.index("--")], command[command.index("--") + 1:]
    options = dict(zip(wrapper[2::2], wrapper[3::2]))
    assert int(options["--shards"]) == workload["spec"]["replicas"]
    assert rest[rest.index("--config") + 1] == options["--out"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    script = Path(wrapper[1])
    shard_map = volumes[mounts[str(script.parent)]]["configMap"]["name"]
    assert script.name in _config_map(objects, workload, shard_map)
    assert (DEPLOY / "base" / "ingest" / "shard.py").read_text() == \
        _config_map(objects, workload, shard_map)[script.name]
    cameras = Path(options["--cameras"])
    assert cameras.name in _config_map(objects, workload, volumes[mounts[str(cameras.parent)]]["configMap"]["name"])
    out = Path(options["--out"])
    assert volumes[mounts[str(out.parent)]]["emptyDir"]["medium"] == "Memory"


def _config_map(objects, workload, name):
    found = [o for o in find(objects, "ConfigMap", name)
             if o["metadata"].get("namespace") == workload["metadata"].get("namespace")]
    assert len(found) == 1, name
    return found[0]["data"]


def test_the_camera_file_in_the_config_map_is_valid_for_ingest_and_detector(tmp_path):
    from detector.roi import load_masks
    from ingest.config import IngestSettings, load_camera_file
    objects = rendered("base")
    workload, _ = container_of(objects, "ingest")
    data = _config_map(objects, workload, next(
        v["configMap"]["name"] for v in pod_spec(workload)["volumes"] if v["name"] == "cameras"))
    path = tmp_path / "cameras.yaml"
    path.write_text(data["cameras.yaml"])
    assert load_camera_file(path, IngestSettings())
    load_masks(path)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_detector_reads_the_mounted_camera_file(kustomization):
    objects = rendered(kustomization)
    workload, container = container_of(objects, "detector")
    settings = service_settings(objects, workload, container)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = {v["name"]: v for v in pod_spec(workload)["volumes"]}[mounts[str(settings.cameras.parent)]]
    assert settings.cameras.name in _config_map(objects, workload, volume["configMap"]["name"])


# ---------------------------------------------------------------- Secrets, volumes

def _secret_refs(objects):
    for workload in workloads(objects):
        for container in pod_spec(workload)["containers"]:
            for item in container.get("env") or []:
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield container["name"], item["name"], ref


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_secret_reference_is_in_the_example_secrets(kustomization):
    text = (DEPLOY / "examples" / "secrets.yaml").read_text()
    examples = {(s["metadata"]["name"], key) for s in yaml.safe_load_all(text)
                for key in s.get("stringData", {})}
    for container, name, ref in _secret_refs(rendered(kustomization)):
        if ref.get("optional"):
            assert (ref["name"], ref["key"]) in examples or f"# {ref['key']}:" in text, (container, name)
        else:
            assert (ref["name"], ref["key"]) in examples, (container, name, ref)


def test_only_the_aggregator_and_dashboard_get_redis_credentials():
    holders = {container for container, _name, ref in _secret_refs(rendered("base"))
               if ref["name"] == "moodstream-redis"}
    assert holders == {"aggregator", "dashboard"}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_mounts_name_declared_volumes_and_existing_config_maps(kustomization):
    objects = rendered(kustomization)
    for workload in workloads(objects):
        spec = pod_spec(workload)
        declared = {v["name"] for v in spec.get("volumes", [])} | \
            {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in declared, (workload["metadata"]["name"], mount)
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                _config_map(objects, workload, volume["configMap"]["name"])


# ---------------------------------------------------------------- security, resources

@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_pod_is_non_root_with_a_read_only_root_filesystem(kustomization):
    for workload in workloads(rendered(kustomization)):
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]} or \
                container["name"] == "redis", f"{name}: no writable /tmp"


def _quantity(value) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[:-len(unit)]) * factor
    return float(text)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_container_has_requests_and_limits(kustomization):
    for workload in workloads(rendered(kustomization)):
        for container in pod_spec(workload)["containers"]:
            resources = container["resources"]
            for kind in ("cpu", "memory"):
                request, limit = resources["requests"][kind], resources["limits"][kind]
                assert 0 < _quantity(request) <= _quantity(limit), (container["name"], kind)


def test_resource_comments_cite_benchmark_sections_that_exist():
    """Every file that sets resources cites benchmarks/RESULTS.md, each cited section
    ("Ingest", "Detector", ...) is a heading there, and each says what its memory is
    based on (RSS, measured or "not measured")."""
    headings = [line.lstrip("# ").strip() for line in
                (REPO / "benchmarks" / "RESULTS.md").read_text().splitlines() if line.startswith("## ")]
    files = [p for p in DEPLOY.rglob("*.yaml") if "schemas" not in p.parts
             and re.search(r"^\s+requests:\s*$", p.read_text(), re.M)]
    assert len(files) >= 6
    for path in files:
        text = path.read_text()
        assert "benchmarks/RESULTS.md" in text, path
        # Memory: a measured RSS, or "RSS ... not measured" (true of every file today).
        assert "RSS" in text, f"{path}: says nothing of memory (RSS)"
        cited = re.findall(r'RESULTS\.md, "([^"]+)"', text) + re.findall(r'; "([^"]+)":', text)
        assert cited or "no dashboard section" in text, f"{path}: cites no section"
        for section in cited:
            assert any(heading.startswith(section) for heading in headings), (path, section)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_workload_has_a_disruption_budget(kustomization):
    objects = rendered(kustomization)
    budgets = find(objects, "PodDisruptionBudget")
    for workload in workloads(objects):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if _match_selector(b["spec"]["selector"], labels)]
        if workload["metadata"]["name"] == "moodstream-redis":
            assert not covering  # one replica: a budget would block every node drain
            continue
        assert len(covering) == 1, workload["metadata"]["name"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_images_carry_the_project_version(kustomization):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for _workload, container in moodstream_containers(rendered(kustomization)):
        name, _, tag = container["image"].rpartition(":")
        assert name in ("moodstream", "moodstream-gpu") and tag == version, container["image"]


# ---------------------------------------------------------------- overlays

@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_gpu_overlay_puts_detectors_on_gpu_nodes_with_the_gpu_image(kustomization):
    objects = rendered(kustomization)
    workload, container = container_of(objects, "detector")
    spec = pod_spec(workload)
    gpu = "gpu" in kustomization or "full" in kustomization
    assert ("nvidia.com/gpu" in container["resources"]["limits"]) == gpu
    assert container["image"].startswith("moodstream-gpu:") == gpu
    if gpu:
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    for _w, other in moodstream_containers(objects):
        if other["name"] != "detector":
            assert other["image"].startswith("moodstream:")


@pytest.mark.parametrize("kustomization", [k for k in KUSTOMIZATIONS if "redis" in k or "full" in k])
def test_redis_statefulset_keeps_an_append_only_file_on_its_volume(kustomization):
    objects = rendered(kustomization)
    redis = one(objects, "StatefulSet", "moodstream-redis")
    container = pod_spec(redis)["containers"][0]
    command = shlex.split(container["command"][-1])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"
    data_dir = command[command.index("--dir") + 1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[data_dir] in {t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]}
    service = one(objects, "Service", "moodstream-redis")
    for name in ("aggregator", "dashboard"):
        workload, _ = container_of(objects, name)
        assert workload["metadata"]["namespace"] == redis["metadata"]["namespace"]
    url_example = next(s for s in yaml.safe_load_all((DEPLOY / "examples" / "secrets.yaml").read_text())
                       if s["metadata"]["name"] == "moodstream-redis")["stringData"]["url"]
    assert f"@{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/" in url_example


# ---------------------------------------------------------------- Grafana

EXTERNAL_METRICS = {
    "kafka_consumergroup_lag": "Kafka Exporter (Strimzi's kafkaExporter)",
    "kafka_topic_partition_current_offset": "Kafka Exporter",
    "keda_scaler_metrics_value": "KEDA operator",
}


def _exposed(registry) -> set[str]:
    names = set()
    for family in registry.collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count", "_created")}
        elif family.type == "info":
            names.add(family.name + "_info")
        else:
            names.add(family.name)
    return names


def _moodstream_metrics() -> set[str]:
    from aggregator.metrics import AggregatorMetrics
    from detector.service import DetectorService
    from detector.settings import DetectorSettings
    from ingest.metrics import IngestMetrics
    return _exposed(IngestMetrics().registry) | \
        _exposed(DetectorService(DetectorSettings()).metrics.registry) | \
        _exposed(AggregatorMetrics().registry)


def test_grafana_dashboard_plots_the_projects_metrics():
    dashboard = json.loads((DEPLOY / "base" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr)}
    assert all(re.search(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{", expr) for expr in exprs)
    known = _moodstream_metrics()
    assert "aggregator_alerts_opened_total" in used
    unknown = used - known - set(EXTERNAL_METRICS)
    assert not unknown, f"metrics nothing exports: {sorted(unknown)}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("frames per second", "lag", "faces per second", "inference latency",
                  "dead letters", "alerts"):
        assert topic in titles
    config_map = one(rendered("base"), "ConfigMap", "moodstream-grafana-dashboard")
    assert json.loads(config_map["data"]["grafana-dashboard.json"]) == dashboard
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
