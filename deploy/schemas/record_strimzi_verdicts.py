"""Record what Strimzi's published models say of deploy/'s Kafka and KafkaNodePool resources.

    python deploy/schemas/record_strimzi_verdicts.py [NODE_PROJECT_DIR]

No schema of these two kinds can be vendored here: Strimzi's CRD files are not on a package
registry, and the npm models (`@kubernetes-models/strimzi-kafka-operator@1.0.1`, generated
from `strimzi-crds-0.49.0.yaml`) ship compiled validators, not schemas (README.md). So this
maintainer tool runs those validators under Node.js (installing the package into
NODE_PROJECT_DIR, a temporary folder by default, with npm) on every Kafka and KafkaNodePool
that deploy/ renders plus broken variants of them, and writes the verdicts to
tests/deploy/data/strimzi_cluster_verdicts.json. tests/deploy then requires every rendered
object to be one recorded as valid, so editing the cluster needs a fresh verdict.

The compiled validators, like the CRD, accept unknown fields (the API server would prune
them silently). A verdict is therefore also strict: every field must exist in the model's
TypeScript declaration (`*.d.ts`, generated from the same CRD), as kubectl's
--validate=strict would demand.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE, VERSION = "@kubernetes-models/strimzi-kafka-operator", "1.0.1"
DEPLOY = Path(__file__).resolve().parents[1]
OUTPUT = DEPLOY.parent / "tests" / "deploy" / "data" / "strimzi_cluster_verdicts.json"
KINDS = ("Kafka", "KafkaNodePool")
ANY = "*"  # a free-form object or a map: any key

NODE_SCRIPT = """
import { readFileSync } from "node:fs";
import { Kafka } from "%(pkg)s/kafka.strimzi.io/v1/Kafka";
import { KafkaNodePool } from "%(pkg)s/kafka.strimzi.io/v1/KafkaNodePool";
const models = { Kafka, KafkaNodePool };
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map((obj) => {
  try { new models[obj.kind](obj).validate(); return { valid: true, errors: [] }; }
  catch (e) { return { valid: false, errors: String(e.message).split("\\n").slice(0, 5) }; }
});
process.stdout.write(JSON.stringify(out));
"""


def declared_fields(dts: str) -> dict:
    """The field tree of a kubernetes-models declaration: name -> subtree, None for a
    scalar or list of scalars, ANY for a map or free-form object."""
    body = dts[dts.index("export interface"):]
    body = re.sub(r"/\*\*.*?\*/", "", body, flags=re.S)
    root: dict = {}
    stack = [root]
    for raw in body.splitlines()[1:]:
        line = raw.strip()
        if not line:
            continue
        if line in ("} & ({", "} | {"):  # oneOf alternatives: they repeat declared keys
            continue
        if line in ("};", "}>;", "}", "});", "})>;"):
            stack.pop()
            if not stack:
                break
            continue
        if line.startswith("[key: string]"):
            stack[-1][ANY] = None
            continue
        match = re.match(r'"([^"]+)"\??: (.*)$', line)
        if not match:
            raise ValueError(f"unexpected declaration line: {line}")
        name, rest = match.groups()
        if rest in ("{", "Array<{"):
            stack[-1][name] = {}
            stack.append(stack[-1][name])
        elif rest == "{};":
            stack[-1][name] = {ANY: None}
        else:
            stack[-1].setdefault(name, None)
    return root


def unknown_fields(obj, tree: dict | None, path: str = "") -> list[str]:
    if not isinstance(tree, dict) or ANY in tree:
        return []
    if isinstance(obj, list):
        return [e for i, item in enumerate(obj) for e in unknown_fields(item, tree, f"{path}/{i}")]
    if not isinstance(obj, dict):
        return []
    found = []
    for key, value in obj.items():
        if key not in tree:
            found.append(f"{path}/{key}")
        elif key != "metadata":  # ObjectMeta: tests/deploy checks it against Kubernetes'
            found += unknown_fields(value, tree[key], f"{path}/{key}")
    return found


def _rendered_objects() -> list[dict]:
    spec = importlib.util.spec_from_file_location("render", DEPLOY / "tools" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    objects: list[dict] = []
    for kustomization in sorted(p.parent for p in DEPLOY.glob("**/kustomization.yaml")):
        if "components" in kustomization.parts:
            continue
        for obj in render.render(kustomization):
            if obj["kind"] in KINDS and obj not in objects:
                objects.append(obj)
    return objects


def broken_variants(objects: list[dict]) -> list[tuple[str, dict]]:
    """Mistakes the verdicts must catch, made on copies of the rendered objects."""
    kafka = next(o for o in objects if o["kind"] == "Kafka")
    pool = next(o for o in objects if o["kind"] == "KafkaNodePool")
    edits = [
        ("listener type misspelt", kafka, lambda o: o["spec"]["kafka"]["listeners"][0].update(type="internl")),
        ("listener port as a string", kafka, lambda o: o["spec"]["kafka"]["listeners"][0].update(port="9092")),
        ("listener without tls", kafka, lambda o: o["spec"]["kafka"]["listeners"][0].pop("tls")),
        ("no listeners", kafka, lambda o: o["spec"]["kafka"].pop("listeners")),
        ("networkPolicyPeers misspelt", kafka, lambda o: o["spec"]["kafka"]["listeners"][0].update(
            networkPolicyPeer=o["spec"]["kafka"]["listeners"][0].pop("networkPolicyPeers"))),
        ("topicOperator misspelt", kafka, lambda o: o["spec"]["entityOperator"].update(
            topicOperators=o["spec"]["entityOperator"].pop("topicOperator"))),
        ("ZooKeeper section (gone in v1)", kafka, lambda o: o["spec"].update(zookeeper={"replicas": 3})),
        ("unknown role", pool, lambda o: o["spec"].update(roles=["brokers"])),
        ("negative replicas", pool, lambda o: o["spec"].update(replicas=-1)),
        ("no storage", pool, lambda o: o["spec"].pop("storage")),
        ("unknown storage type", pool, lambda o: o["spec"]["storage"].update(type="local")),
        ("storage size misspelt", pool, lambda o: o["spec"]["storage"].update(
            sise=o["spec"]["storage"].pop("size", "1Gi"))),
    ]
    variants = []
    for label, original, edit in edits:
        obj = copy.deepcopy(original)
        edit(obj)
        variants.append((label, obj))
    return variants


def run_validators(node_dir: Path, objects: list[dict]) -> list[dict]:
    package_dir = node_dir / "node_modules" / PACKAGE
    if not package_dir.is_dir():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(node_dir),
                        f"{PACKAGE}@{VERSION}"], check=True)
    script = node_dir / "verdicts.mjs"
    script.write_text(NODE_SCRIPT % {"pkg": PACKAGE})
    result = subprocess.run(["node", str(script)], input=json.dumps(objects), text=True,
                            capture_output=True, check=True, cwd=node_dir)
    return json.loads(result.stdout)


def record(node_dir: Path) -> dict:
    package_dir = node_dir / "node_modules" / PACKAGE
    rendered = _rendered_objects()
    cases = [(f"rendered {o['kind']} {o['metadata']['name']}", o) for o in rendered]
    cases += broken_variants(rendered)
    verdicts = run_validators(node_dir, [obj for _, obj in cases])
    trees = {kind: declared_fields((package_dir / "kafka.strimzi.io" / "v1" / f"{kind}.d.ts")
                                   .read_text()) for kind in KINDS}
    installed = json.loads((package_dir / "package.json").read_text())["version"]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "source": f"{PACKAGE}@{installed} (npm; generated from strimzi-crds-0.49.0.yaml), "
                  f"compiled validators run under Node.js {node}, plus unknown fields "
                  "against the package's .d.ts (deploy/schemas/record_strimzi_verdicts.py)",
        "cases": [{"label": label, "object": obj, "npm_valid": verdict["valid"],
                   "npm_errors": verdict["errors"],
                   "unknown_fields": unknown_fields(obj, trees[obj["kind"]]),
                   "valid": verdict["valid"] and not unknown_fields(obj, trees[obj["kind"]])}
                  for (label, obj), verdict in zip(cases, verdicts)],
    }


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print("usage: record_strimzi_verdicts.py [NODE_PROJECT_DIR]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        data = record(Path(argv[0]) if argv else Path(scratch))
    OUTPUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    bad = [c["label"] for c in data["cases"] if c["label"].startswith("rendered") and not c["valid"]]
    print(f"{len(data['cases'])} cases written to {OUTPUT}; rendered objects rejected: {bad or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
