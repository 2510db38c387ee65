"""Every object deploy/ renders is valid: Kubernetes kinds against Kubernetes' OpenAPI schemas
(kubernetes-validate, strict), custom resources against the CRD schemas vendored in
deploy/schemas (jsonschema, strict the same way)."""

from __future__ import annotations

import json
import sys

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from tests.deploy.helpers import (DEPLOY, KUBERNETES_VERSIONS, KUSTOMIZATIONS, crd_schemas,
                                  recorded_verdicts, rendered, strict)

CRDS = crd_schemas()
VERDICTS = recorded_verdicts()
RECORDED_KINDS = {("kafka.strimzi.io/v1", "Kafka"), ("kafka.strimzi.io/v1", "KafkaNodePool")}


def _definitions() -> dict:
    """Kubernetes' definitions as kubernetes-validate bundles them, for ObjectMeta."""
    package = sys.modules["kubernetes_validate"].__file__.rsplit("/", 1)[0]
    version = f"v{KUBERNETES_VERSIONS[-1]}-local-strict"
    with open(f"{package}/kubernetes-json-schema/{version}/_definitions.json") as handle:
        return json.load(handle)


DEFINITIONS = _definitions()
OBJECT_META = {"$ref": DEFINITIONS["$id"] + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
REGISTRY = Registry().with_resource(DEFINITIONS["$id"], Resource.from_contents(DEFINITIONS))


def crd_errors(obj: dict) -> list[str]:
    key = (obj["apiVersion"], obj["kind"])
    schema = strict(CRDS[key])
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]
    return errors + metadata_errors(obj)


def metadata_errors(obj: dict) -> list[str]:
    meta = jsonschema.Draft202012Validator(OBJECT_META, registry=REGISTRY)
    return [f"metadata/{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in meta.iter_errors(obj["metadata"])]


def recorded_errors(obj: dict) -> list[str]:
    """A Kafka or KafkaNodePool is valid when Strimzi's models accepted this very object
    (tests/deploy/data/strimzi_cluster_verdicts.json): any edit needs a new verdict."""
    accepted = [case["object"] for case in VERDICTS["cases"] if case["valid"]]
    errors = metadata_errors(obj)
    if obj not in accepted:
        errors.append("not among the objects Strimzi's models accepted: run "
                      "deploy/schemas/record_strimzi_verdicts.py")
    return errors


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_object_is_valid(kustomization, version):
    failures = []
    for obj in rendered(kustomization):
        where = f"{obj['kind']} {obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in CRDS:
            failures += [f"{where}: {error}" for error in crd_errors(obj)]
            continue
        if (obj["apiVersion"], obj["kind"]) in RECORDED_KINDS:
            failures += [f"{where}: {error}" for error in recorded_errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            failures.append(f"{where}: no schema for {obj['apiVersion']} {obj['kind']}")
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{where}: {'/'.join(map(str, exc.path))}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_the_example_secrets_are_valid():
    for obj in yaml.safe_load_all((DEPLOY / "examples" / "secrets.yaml").read_text()):
        kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)


def test_custom_resources_of_every_vendored_kind_are_rendered():
    kinds = {(o["apiVersion"], o["kind"]) for k in KUSTOMIZATIONS for o in rendered(k)}
    assert set(CRDS) | RECORDED_KINDS <= kinds


def test_the_recorded_strimzi_verdicts_catch_mistakes():
    """The verdicts come from Strimzi's current models (@kubernetes-models/
    strimzi-kafka-operator, compiled validators) plus a strict unknown-field check; the
    broken variants recorded with them show both halves reject what they should."""
    assert "strimzi-kafka-operator@1.0.1" in VERDICTS["source"]
    broken = [c for c in VERDICTS["cases"] if not c["label"].startswith("rendered ")]
    assert len(broken) >= 10
    for case in broken:
        assert not case["valid"], case["label"]
        assert case["npm_errors"] or case["unknown_fields"], case["label"]
    assert any(not c["npm_valid"] for c in broken)  # the models' own checks
    assert any(c["npm_valid"] and c["unknown_fields"] for c in broken)  # the strict check
    rendered_cases = [c for c in VERDICTS["cases"] if c["label"].startswith("rendered ")]
    assert rendered_cases and all(c["valid"] for c in rendered_cases)


def test_a_changed_kafka_resource_needs_a_new_verdict():
    kafka = next(o for o in rendered("overlays/strimzi-cluster") if o["kind"] == "Kafka")
    assert recorded_errors(kafka) == []
    kafka["spec"]["kafka"]["config"]["min.insync.replicas"] = 1
    assert recorded_errors(kafka)


def test_strict_validation_catches_a_misspelt_field():
    deployment = next(o for o in rendered("base") if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    scaled = next(o for o in rendered("base") if o["kind"] == "ScaledObject")
    scaled["spec"]["maxReplicas"] = 8
    assert any("maxReplicas" in error for error in crd_errors(scaled))
    scaled = next(o for o in rendered("base") if o["kind"] == "ScaledObject")
    scaled["metadata"]["labels"] = {"a": 1}
    assert any(error.startswith("metadata/labels") for error in crd_errors(scaled))


def test_vendored_schemas_agree_with_the_current_npm_validators():
    """tests/deploy/data/npm_validator_cases.json: custom resources rendered from deploy/
    and broken variants of them, each with the verdict of the current releases' compiled
    validators (@kubernetes-models/keda@2.0.0, prometheus-operator@6.0.0,
    strimzi-kafka-operator@1.0.1, run once under Node.js; deploy/schemas/README.md). The
    vendored, older schemas (not made strict here: the npm validators are not) must agree."""
    data = json.loads((DEPLOY.parent / "tests" / "deploy" / "data" /
                       "npm_validator_cases.json").read_text())
    assert len(data["cases"]) >= 20
    for case in data["cases"]:
        obj = case["object"]
        schema = CRDS[(obj["apiVersion"], obj["kind"])]
        assert jsonschema.Draft7Validator(schema).is_valid(obj) == case["valid"], case["label"]
