"""Extract a CRD's JSON schema from a @kubernetes-models npm tarball (deploy/schemas/README.md).

    npm pack @kubernetes-models/keda@0.3.1
    python deploy/schemas/extract_npm_schema.py kubernetes-models-keda-0.3.1.tgz \
        package/keda.sh/v1alpha1/ScaledObject.js > deploy/schemas/keda/scaledobject-v1alpha1.json

The model files of those versions hold the schema crd-generate made from the CRD as a JSON
literal (`const schema = {...};`). It is written out unchanged except for one reference:
`metadata` points at the npm package's own ObjectMeta schema, which is not vendored, so it
becomes {"type": "object"}; tests/deploy validates metadata against Kubernetes' ObjectMeta
(from kubernetes-validate) instead.
"""

from __future__ import annotations

import json
import sys
import tarfile

OBJECT_META_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta#"


def extract(tarball: str, member: str) -> dict:
    with tarfile.open(tarball) as archive:
        source = archive.extractfile(member).read().decode("utf-8")
    start = source.index("const schema = ") + len("const schema = ")
    end = source.index("\n};\n", start) + 2
    schema = json.loads(source[start:end])
    metadata = schema["properties"]["metadata"]
    refs = [option.get("$ref") for option in metadata.get("oneOf", [])]
    if OBJECT_META_REF not in refs:
        raise ValueError(f"{member}: unexpected metadata schema {metadata}")
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: extract_npm_schema.py TARBALL MEMBER")
    json.dump(extract(sys.argv[1], sys.argv[2]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
