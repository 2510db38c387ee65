"""deploy/tools/render.py: the kustomize subset the tests (and operators without kustomize)
render deploy/ with; compared with a real kustomize wherever one is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap

import pytest
import yaml

from tests.deploy.helpers import DEPLOY, KUSTOMIZATIONS, renderer, rendered

render = renderer()


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


# Names kubectl kustomize (kustomize v5.5.0) gave for these generators.
@pytest.mark.parametrize("data, suffix", [
    ({}, "6ct58987ht"),
    ({"A": "1"}, "89g4tffbfk"),
    ({"A": "1", "B": "<x&y>"}, "kh7f5d858d"),
])
def test_config_map_hash_is_kustomizes(data, suffix):
    assert render.config_map_hash(data) == suffix


def test_generated_config_map_is_renamed_everywhere_it_is_referenced(tmp_path):
    write(tmp_path / "kustomization.yaml", """
        namespace: ns
        resources: [deploy.yaml]
        configMapGenerator:
          - name: settings
            literals: [A=1]
          - name: files
            files: [conf/app.yaml]
    """)
    write(tmp_path / "conf" / "app.yaml", "x: 1\n")
    write(tmp_path / "deploy.yaml", """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: d}
        spec:
          selector: {matchLabels: {app: d}}
          template:
            metadata: {labels: {app: d}}
            spec:
              containers:
                - name: c
                  image: img:1
                  envFrom: [{configMapRef: {name: settings}}]
                  env:
                    - name: B
                      valueFrom: {configMapKeyRef: {name: settings, key: A}}
              volumes:
                - name: v
                  configMap: {name: files}
                - name: p
                  projected: {sources: [{configMap: {name: files}}]}
    """)
    objects = render.render(tmp_path)
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    files_hash = render.config_map_hash({"app.yaml": "x: 1\n"})
    assert names == {"settings-89g4tffbfk", f"files-{files_hash}"}
    spec = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["envFrom"][0]["configMapRef"]["name"] == "settings-89g4tffbfk"
    assert container["env"][0]["valueFrom"]["configMapKeyRef"]["name"] == "settings-89g4tffbfk"
    files = f"files-{files_hash}"
    assert spec["volumes"][0]["configMap"]["name"] == files
    assert spec["volumes"][1]["projected"]["sources"][0]["configMap"]["name"] == files
    assert all(o["metadata"]["namespace"] == "ns" for o in objects)
    assert all("annotations" not in o["metadata"] for o in objects)


def test_component_merges_a_generator_and_patches(tmp_path):
    write(tmp_path / "base" / "kustomization.yaml", """
        resources: [svc.yaml]
        configMapGenerator:
          - name: settings
            literals: [A=1, B=2]
    """)
    write(tmp_path / "base" / "svc.yaml", """
        apiVersion: v1
        kind: Service
        metadata: {name: s}
        spec:
          ports: [{port: 80}]
    """)
    write(tmp_path / "comp" / "kustomization.yaml", """
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        configMapGenerator:
          - name: settings
            behavior: merge
            literals: [A=9]
        patches:
          - target: {kind: Service, name: s}
            patch: |-
              - op: replace
                path: /spec/ports/0/port
                value: 8080
    """)
    write(tmp_path / "overlay" / "kustomization.yaml", """
        resources: [../base]
        components: [../comp]
    """)
    objects = render.render(tmp_path / "overlay")
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"] == {"A": "9", "B": "2"}
    assert config["metadata"]["name"] == f"settings-{render.config_map_hash({'A': '9', 'B': '2'})}"
    assert next(o for o in objects if o["kind"] == "Service")["spec"]["ports"] == [{"port": 8080}]


def test_strategic_merge_follows_kubernetes_merge_keys():
    base = {"spec": {"containers": [
        {"name": "a", "image": "x:1", "env": [{"name": "K", "value": "1"}],
         "args": ["--one"], "resources": {"limits": {"cpu": "1"}}},
        {"name": "b", "image": "y:1"}],
        "tolerations": [{"key": "t"}], "nodeSelector": {"a": "1"}}}
    patch = {"spec": {"containers": [
        {"name": "a", "env": [{"name": "L", "value": "2"}], "args": ["--two"],
         "resources": {"limits": {"nvidia.com/gpu": 1}}}],
        "tolerations": [{"key": "gpu"}], "nodeSelector": {"a": None, "b": "2"}}}
    merged = render.strategic_merge(base, patch)
    a, b = merged["spec"]["containers"]
    assert a["image"] == "x:1" and b == {"name": "b", "image": "y:1"}
    assert a["env"] == [{"name": "K", "value": "1"}, {"name": "L", "value": "2"}]  # merged by name
    assert a["args"] == ["--two"]  # no merge key: replaced
    assert a["resources"] == {"limits": {"cpu": "1", "nvidia.com/gpu": 1}}
    assert merged["spec"]["tolerations"] == [{"key": "gpu"}]
    assert merged["spec"]["nodeSelector"] == {"b": "2"}  # null deletes
    assert base["spec"]["containers"][0]["args"] == ["--one"]  # inputs untouched


def test_json_patch_operations():
    doc = {"a": {"b": [1, 2]}, "c/d": 1}
    out = render.json_patch(doc, [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "replace", "path": "/a/b/0", "value": 0},
        {"op": "remove", "path": "/c~1d"},
        {"op": "test", "path": "/a/b/2", "value": 3},
    ])
    assert out == {"a": {"b": [0, 2, 3]}}
    with pytest.raises(render.RenderError):
        render.json_patch(doc, [{"op": "test", "path": "/a/b/0", "value": 9}])
    with pytest.raises(render.RenderError):
        render.json_patch(doc, [{"op": "move", "from": "/a", "path": "/b"}])


def test_images_transformer(tmp_path):
    write(tmp_path / "kustomization.yaml", """
        resources: [pod.yaml]
        images:
          - {name: moodstream, newName: registry.example/moodstream, newTag: "2.0"}
    """)
    write(tmp_path / "pod.yaml", """
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: s}
        spec:
          template:
            spec:
              initContainers: [{name: i, image: "moodstream:0.1.0"}]
              containers: [{name: c, image: "moodstream"}, {name: d, image: "moodstream-gpu:0.1.0"}]
    """)
    spec = render.render(tmp_path)[0]["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["image"] == "registry.example/moodstream:2.0"
    assert [c["image"] for c in spec["containers"]] == ["registry.example/moodstream:2.0",
                                                         "moodstream-gpu:0.1.0"]


@pytest.mark.parametrize("kustomization, files, message", [
    ("commonLabels: {a: b}\n", {}, "unsupported field"),
    ("configMapGenerator:\n  - name: x\n    files: [../secret.txt]\n", {}, "outside"),
    ("resources: [a.yaml]\npatches:\n  - patch: |-\n      apiVersion: v1\n      kind: Service\n"
     "      metadata: {name: nope}\n", {"a.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"},
     "matches nothing"),
    ("configMapGenerator:\n  - name: x\n    behavior: merge\n    literals: [A=1]\n", {}, "no generated"),
])
def test_unsupported_or_wrong_input_is_an_error(tmp_path, kustomization, files, message):
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "kustomization.yaml").write_text(kustomization)
    (tmp_path / "secret.txt").write_text("x")
    for name, text in files.items():
        (tmp_path / "k" / name).write_text(text)
    with pytest.raises(render.RenderError, match=message):
        render.render(tmp_path / "k")


def test_command_line_renders_yaml(capsys):
    assert render.main([str(DEPLOY / "base")]) == 0
    objects = list(yaml.safe_load_all(capsys.readouterr().out))
    assert objects == rendered("base")
    assert render.main([]) == 2


def _kustomize_major(command: list[str]) -> int | None:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(?:Kustomize Version: |^)v?(\d+)\.\d+", out, re.M)
    return int(match.group(1)) if match else None


def _kustomize_command():
    """kustomize v5 (standalone, or built into kubectl 1.27+); older ones lack features
    deploy/ uses (components, the patches field)."""
    if shutil.which("kustomize") and (_kustomize_major(["kustomize", "version"]) or 0) >= 5:
        return ["kustomize", "build"]
    if shutil.which("kubectl") and \
            (_kustomize_major(["kubectl", "version", "--client"]) or 0) >= 5:
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_same_objects_as_kustomize(kustomization):
    """Where kustomize (or kubectl's built-in kustomize) is installed, it must produce
    exactly what the Python renderer produces, in the same order."""
    command = _kustomize_command()
    if command is None:
        pytest.skip("no kustomize v5 (or kubectl with it) on PATH: nothing to compare with")
    try:
        result = subprocess.run([*command, str(DEPLOY / kustomization)], capture_output=True,
                                text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip(f"{command[0]} did not answer within 120 s")
    if result.returncode != 0 and "unknown command" in result.stderr:
        pytest.skip(f"{' '.join(command)} is not available: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == rendered(kustomization)
