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
                                  rendered, strict)

CRDS = crd_schemas()


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
    meta = jsonschema.Draft202012Validator(OBJECT_META, registry=REGISTRY)
    errors += [f"metadata/{'/'.join(map(str, e.absolute_path))}: {e.message}"
               for e in meta.iter_errors(obj["metadata"])]
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
    assert set(CRDS) <= kinds


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
