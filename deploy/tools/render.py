"""Render a kustomization without the kustomize binary: the subset this repository uses.

    python deploy/tools/render.py deploy/overlays/gpu > moodstream.yaml

`kubectl apply -k deploy/overlays/gpu` (kustomize v5) gives the same objects; the tests in
tests/deploy render every overlay with this module and, where a `kustomize` or `kubectl`
binary is installed, compare the two object by object. It exists so `make test` can render
and validate the manifests on a fresh machine from Python packages alone: Debian ships only
kubectl 1.20, whose kustomize (v2) predates components and the `patches` field.

Supported kustomization fields: resources (files and directories), components, namespace,
images, configMapGenerator (files, literals, behavior create/merge/replace, options),
generatorOptions and patches (strategic-merge or JSON 6902, inline or from a file, with an
optional target). Any other field is an error, so nothing is silently left out. Generated
ConfigMaps get kustomize's content-hash suffix (so a changed camera file rolls the pods
that mount it) and every reference to them in a pod spec is renamed to match.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED = {"apiVersion", "kind", "resources", "components", "namespace", "images",
             "configMapGenerator", "generatorOptions", "patches"}
GENERATOR_KEYS = {"name", "namespace", "behavior", "files", "literals", "options"}
OPTION_KEYS = {"labels", "annotations", "disableNameSuffixHash"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass", "RuntimeClass",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                  "APIService", "IngressClass"}
# kustomize's "legacy" output order; other kinds follow, in the order they were loaded.
KIND_ORDER = ["Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition",
              "ServiceAccount", "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding",
              "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service", "LimitRange",
              "PriorityClass", "PersistentVolume", "PersistentVolumeClaim", "Deployment",
              "StatefulSet", "CronJob", "PodDisruptionBudget"]
# Strategic-merge keys of the list fields we patch (Kubernetes' patchMergeKey); any other
# list is replaced whole, as Kubernetes does for lists without a merge key.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
              "env": "name", "volumes": "name", "volumeMounts": "mountPath",
              "imagePullSecrets": "name", "volumeClaimTemplates": "metadata.name"}
GENERATED = "internal.moodstream.deploy/generated"  # annotation, removed before output


class RenderError(ValueError):
    """The kustomization uses something this renderer does not do, or is wrong."""


# ---------------------------------------------------------------- entry points

def render(path: str | Path) -> list[dict]:
    """Every object the kustomization at `path` produces, in kustomize's legacy order."""
    resources = _build(Path(path).resolve(), component=False)
    _finish_generated(resources)
    return sorted(resources, key=_order_key)


def dump(resources: list[dict]) -> str:
    return yaml.safe_dump_all(resources, sort_keys=False, default_flow_style=False)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python deploy/tools/render.py KUSTOMIZATION_DIR", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(dump(render(args[0])))
    except (RenderError, OSError, yaml.YAMLError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- building

def _load_kustomization(directory: Path) -> dict:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            data = yaml.safe_load(candidate.read_text(encoding="utf-8")) or {}
            unknown = set(data) - SUPPORTED
            if unknown:
                raise RenderError(f"{candidate}: unsupported field(s) {sorted(unknown)}")
            return data
    raise RenderError(f"{directory}: no kustomization.yaml")


def _inside(root: Path, relative: str) -> Path:
    """A file a kustomization loads must lie under its own directory (kustomize's rule)."""
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise RenderError(f"{root}: {relative} is outside the kustomization directory")
    return target


def _build(directory: Path, component: bool, resources: list[dict] | None = None) -> list[dict]:
    k = _load_kustomization(directory)
    is_component = k.get("kind") == "Component"
    if is_component != component:
        raise RenderError(f"{directory}: kind {k.get('kind', 'Kustomization')} used as "
                          f"{'a component' if component else 'resources'}")
    resources = [] if resources is None else resources
    for entry in k.get("resources") or []:
        target = (directory / entry).resolve()  # bases may live outside (../../base)
        if target.is_dir():
            resources.extend(_build(target, component=False))
        else:
            resources.extend(_load_objects(target))
    for entry in k.get("components") or []:
        _build((directory / entry).resolve(), component=True, resources=resources)
    options = k.get("generatorOptions") or {}
    for generator in k.get("configMapGenerator") or []:
        _generate(directory, generator, options, resources)
    for patch in k.get("patches") or []:
        _apply_patch(directory, patch, resources)
    if k.get("namespace"):
        _set_namespace(resources, k["namespace"])
    for image in k.get("images") or []:
        _set_image(resources, image)
    return resources


def _load_objects(path: Path) -> list[dict]:
    objects = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for obj in objects:
        if not isinstance(obj, dict) or "kind" not in obj or "metadata" not in obj:
            raise RenderError(f"{path}: every document needs kind and metadata")
        if obj["kind"].endswith("List"):
            raise RenderError(f"{path}: List objects are not supported")
    return objects


# ---------------------------------------------------------------- generators

def _generate(directory: Path, generator: dict, options: dict, resources: list[dict]) -> None:
    unknown = set(generator) - GENERATOR_KEYS
    if unknown:
        raise RenderError(f"{directory}: configMapGenerator field(s) {sorted(unknown)}")
    name, behavior = generator["name"], generator.get("behavior", "create")
    data: dict[str, str] = {}
    for entry in generator.get("files") or []:
        key, sep, relative = entry.partition("=")
        relative = relative if sep else key
        key = key if sep else Path(relative).name
        data[key] = _inside(directory, relative).read_text(encoding="utf-8")
    for entry in generator.get("literals") or []:
        key, sep, value = entry.partition("=")
        if not sep:
            raise RenderError(f"{directory}: literal {entry!r} is not KEY=VALUE")
        data[key] = value
    merged_options = {**options, **(generator.get("options") or {})}
    if set(merged_options) - OPTION_KEYS:
        raise RenderError(f"{directory}: generator option(s) "
                          f"{sorted(set(merged_options) - OPTION_KEYS)}")
    existing = [r for r in resources if r["kind"] == "ConfigMap"
                and r["metadata"].get("annotations", {}).get(GENERATED) == name]
    if behavior == "create":
        if existing:
            raise RenderError(f"{directory}: ConfigMap {name} is generated twice "
                              "(use behavior: merge or replace)")
        metadata: dict[str, Any] = {"name": name}
        if generator.get("namespace"):
            metadata["namespace"] = generator["namespace"]
        if merged_options.get("labels"):
            metadata["labels"] = dict(merged_options["labels"])
        annotations = dict(merged_options.get("annotations") or {})
        annotations[GENERATED] = name
        metadata["annotations"] = annotations
        hashed = not merged_options.get("disableNameSuffixHash", False)
        resources.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                          "data": data, "_hashed": hashed})
    elif behavior in ("merge", "replace"):
        if len(existing) != 1:
            raise RenderError(f"{directory}: behavior {behavior}: no generated ConfigMap {name}")
        target = existing[0]
        target["data"] = {**target.get("data", {}), **data} if behavior == "merge" else data
        if merged_options.get("labels"):
            target["metadata"].setdefault("labels", {}).update(merged_options["labels"])
        if "disableNameSuffixHash" in merged_options:
            target["_hashed"] = not merged_options["disableNameSuffixHash"]
    else:
        raise RenderError(f"{directory}: unknown generator behavior {behavior!r}")


def config_map_hash(data: dict[str, str]) -> str:
    """kustomize's name suffix for a ConfigMap (api/hasher): sha256 of Go's json.Marshal of
    {"data", "kind", "name"}, where kustomize's name lookup comes back empty, then the
    first ten hex digits with 0, 1, 3, a, e swapped for g, h, k, m, t."""
    encoded = json.dumps({"data": data if data else "", "kind": "ConfigMap", "name": ""},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        encoded = encoded.replace(char, escaped)  # Go's json.Marshal escapes HTML
    digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _finish_generated(resources: list[dict]) -> None:
    renames: dict[tuple[str | None, str], str] = {}
    for obj in resources:
        annotations = obj["metadata"].get("annotations", {})
        if GENERATED not in annotations:
            obj.pop("_hashed", None)
            continue
        original = annotations.pop(GENERATED)
        if not annotations:
            del obj["metadata"]["annotations"]
        if obj.pop("_hashed", True):
            obj["metadata"]["name"] = f"{original}-{config_map_hash(obj.get('data') or {})}"
        renames[(obj["metadata"].get("namespace"), original)] = obj["metadata"]["name"]
    for obj in resources:
        namespace = obj["metadata"].get("namespace")
        for ref in _config_map_refs(obj):
            new = renames.get((namespace, ref["name"]))
            if new:
                ref["name"] = new


def _config_map_refs(obj: dict):
    """Every {name: ...} in a pod spec that names a ConfigMap."""
    for spec in _pod_specs(obj):
        for volume in spec.get("volumes") or []:
            if "configMap" in volume:
                yield volume["configMap"]
            for source in (volume.get("projected") or {}).get("sources") or []:
                if "configMap" in source:
                    yield source["configMap"]
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for env_from in container.get("envFrom") or []:
                if "configMapRef" in env_from:
                    yield env_from["configMapRef"]
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
                if ref:
                    yield ref


def _pod_specs(obj: dict):
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        yield spec
    template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get("template")
    if template and "spec" in template:
        yield template["spec"]


# ---------------------------------------------------------------- patches

def _apply_patch(directory: Path, entry: dict, resources: list[dict]) -> None:
    if set(entry) - {"path", "patch", "target"}:
        raise RenderError(f"{directory}: patch field(s) {sorted(set(entry) - {'path', 'patch', 'target'})}")
    text = _inside(directory, entry["path"]).read_text(encoding="utf-8") if "path" in entry \
        else entry.get("patch")
    if not text:
        raise RenderError(f"{directory}: a patch needs path or patch")
    body = yaml.safe_load(text)
    target = entry.get("target")
    if isinstance(body, list):  # JSON 6902
        if not target:
            raise RenderError(f"{directory}: a JSON 6902 patch needs a target")
        matches = _select(resources, target)
        for obj in matches:
            replaced = json_patch(obj, body)
            obj.clear()
            obj.update(replaced)
    else:
        target = target or {"kind": body.get("kind"), "name": body.get("metadata", {}).get("name")}
        matches = _select(resources, target)
        for obj in matches:
            merged = strategic_merge(obj, {k: v for k, v in body.items()
                                           if k not in ("apiVersion", "kind")} | {
                "metadata": {k: v for k, v in (body.get("metadata") or {}).items()
                             if k not in ("name", "namespace")}})
            obj.clear()
            obj.update(merged)
    if not matches:
        raise RenderError(f"{directory}: patch target {target} matches nothing")


def _select(resources: list[dict], target: dict) -> list[dict]:
    if set(target) - {"kind", "name", "namespace", "group", "version"}:
        raise RenderError(f"unsupported patch target field(s): {sorted(target)}")
    found = []
    for obj in resources:
        group, _, version = obj["apiVersion"].rpartition("/")
        name = obj["metadata"].get("annotations", {}).get(GENERATED) or obj["metadata"]["name"]
        if all(want is None or have == want for want, have in (
                (target.get("kind"), obj["kind"]), (target.get("name"), name),
                (target.get("namespace"), obj["metadata"].get("namespace")),
                (target.get("group"), group), (target.get("version"), version))):
            found.append(obj)
    return found


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """Kubernetes' strategic merge for the fields this repository patches: maps merge key
    by key, a null deletes, lists in MERGE_KEYS merge item by item on their key (new items
    appended), and every other list or scalar is replaced."""
    if isinstance(patch, dict):
        if any(str(k).startswith("$") for k in patch):
            raise RenderError(f"strategic-merge directives are not supported ({field})")
        result = dict(base) if isinstance(base, dict) else {}
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge(result.get(key), value, key)
        return result
    if isinstance(patch, list) and field in MERGE_KEYS and isinstance(base, list):
        key = MERGE_KEYS[field]
        result = [copy.deepcopy(item) for item in base]
        for item in patch:
            if not isinstance(item, dict) or _lookup(item, key) is None:
                raise RenderError(f"{field}: every patch item needs {key}")
            for index, existing in enumerate(result):
                if _lookup(existing, key) == _lookup(item, key):
                    result[index] = strategic_merge(existing, item, field)
                    break
            else:
                result.append(copy.deepcopy(item))
        return result
    return copy.deepcopy(patch)


def _lookup(item: dict, dotted: str):
    for part in dotted.split("."):
        item = item.get(part) if isinstance(item, dict) else None
    return item


def json_patch(document: Any, operations: list[dict]) -> Any:
    """RFC 6902 add, remove, replace and test."""
    document = copy.deepcopy(document)
    for op in operations:
        kind, path = op.get("op"), op.get("path")
        if kind not in ("add", "remove", "replace", "test") or not isinstance(path, str):
            raise RenderError(f"unsupported JSON patch operation {op}")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        if not parts:
            raise RenderError("JSON patch of the whole document is not supported")
        parent = document
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent[last]
            if current != op["value"]:
                raise RenderError(f"JSON patch test failed at {path}")
        elif isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif kind == "remove":
                del parent[index]
            else:
                parent[index] = copy.deepcopy(op["value"])
        else:
            if kind in ("remove", "replace") and last not in parent:
                raise RenderError(f"JSON patch {kind}: no {path}")
            if kind == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(op["value"])
    return document


# ---------------------------------------------------------------- transformers

def _set_namespace(resources: list[dict], namespace: str) -> None:
    for obj in resources:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace  # as kustomize does
        elif obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace


def _set_image(resources: list[dict], image: dict) -> None:
    if set(image) - {"name", "newName", "newTag", "digest"}:
        raise RenderError(f"unsupported images field(s) in {image}")
    for obj in resources:
        for spec in _pod_specs(obj):
            for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                name, tag = _split_image(container.get("image", ""))
                if name != image["name"]:
                    continue
                name = image.get("newName", name)
                if image.get("digest"):
                    container["image"] = f"{name}@{image['digest']}"
                else:
                    new_tag = image.get("newTag", tag)
                    container["image"] = f"{name}:{new_tag}" if new_tag else name


def _split_image(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image.split("@", 1)[0], None
    name, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return image, None


def _order_key(obj: dict):
    """kustomize's legacy order: known kinds first in KIND_ORDER, then the others by
    group, version and kind; within a kind by namespace and name."""
    kind = obj["kind"]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    group, _, version = obj["apiVersion"].rpartition("/")
    gvk = (group, version, kind) if rank == len(KIND_ORDER) else ("", "", "")
    return rank, gvk, obj["metadata"].get("namespace") or "", obj["metadata"]["name"]


if __name__ == "__main__":
    sys.exit(main())
