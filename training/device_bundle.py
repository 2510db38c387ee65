"""The data and weights that travel to and from a GPU machine that has no copy of the dataset.

`pack` computes the training targets exactly as `train` does (load_splits, then
training_targets: FER+ mix labels, kept faces) and writes them with the validation faces,
labels and FER+ votes as lzma'd .npy files plus `manifest.json` (config, shapes, bytes,
SHA-256 of every file, the datasets' fingerprints). `load` reads and checks them; it needs
numpy alone, so it runs where TensorFlow and OpenCV are missing.

`save_weight_chunks` writes a model's variables as a few files small enough to come back
from the device machine (16 MiB a file there), with an index; `keras_from_chunks` rebuilds
the .keras that `python -m training export --model` takes.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import time
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
WEIGHTS_INDEX = "weights.json"
CHUNK_BYTES = 15 * 2**20  # under the device machine's 16 MiB a returned file
FLOAT32_WEIGHTS_MAX = 44 * 2**20  # above this, float16 (64 MiB comes back in all)
ARRAYS = ("train_x", "train_y", "val_x", "val_y", "val_votes", "val_majority")


class BundleError(ValueError):
    """A bundle or a set of weight chunks that cannot be used; the message says why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def bundle_arrays(cfg) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays `train` would fit on, and what identifies them."""
    from moodstream.emotions import EMOTIONS
    from training import ferplus
    from training.train import load_splits, training_targets

    train_set, val_set = load_splits(cfg)
    targets = training_targets(cfg, train_set)
    votes = np.zeros((len(val_set), len(EMOTIONS)), np.float32)
    majority = np.full(len(val_set), -1, np.int32)
    if cfg.ferplus_val and val_set.paths is not None:
        votes, majority = ferplus.align(val_set.paths, ferplus.read_votes(cfg.ferplus_val))
    arrays = {"train_x": train_set.x[targets.keep], "train_y": targets.y.astype(np.float32),
              "val_x": val_set.x, "val_y": val_set.y.astype(np.int32),
              "val_votes": votes.astype(np.float32), "val_majority": majority.astype(np.int32)}
    about = {"train_fingerprint": train_set.fingerprint(), "val_fingerprint": val_set.fingerprint(),
             "train_counts": train_set.class_counts(), "val_counts": val_set.class_counts(),
             "targets": targets.counts, "skipped": train_set.skipped}
    return arrays, about


def write_bundle(out: str | Path, arrays: dict[str, np.ndarray], config: dict, about: dict) -> Path:
    """Write every array as NAME.npy.xz and the manifest; returns the manifest's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in ARRAYS:
        data = lzma.compress(_npy_bytes(arrays[name]), preset=9 | lzma.PRESET_EXTREME)
        (out / f"{name}.npy.xz").write_bytes(data)
        files[name] = {"file": f"{name}.npy.xz", "shape": list(arrays[name].shape),
                       "dtype": str(arrays[name].dtype), "bytes": len(data),
                       "raw_bytes": int(arrays[name].nbytes), "sha256": _sha256(data)}
    manifest = {"format": 1, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "config": config, **about, "files": files,
                "total_bytes": sum(f["bytes"] for f in files.values())}
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=2))
    return path


def pack(cfg, out: str | Path) -> Path:
    arrays, about = bundle_arrays(cfg)
    return write_bundle(out, arrays, cfg.to_dict(), about)


def load(folder: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """The bundle's arrays and manifest, every file checked against its SHA-256 and shape."""
    folder = Path(folder)
    manifest = _read_json(folder, MANIFEST)
    arrays = {}
    for name in ARRAYS:
        entry = manifest["files"][name]
        data = _read_checked(folder / entry["file"], entry["sha256"])
        array = np.load(io.BytesIO(lzma.decompress(data)), allow_pickle=False)
        if list(array.shape) != entry["shape"]:
            raise BundleError(f"{entry['file']}: shape {array.shape}, manifest says {entry['shape']}")
        arrays[name] = array
    return arrays, manifest


def _read_json(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"no readable {name} in {folder}: {exc}") from None


def _read_checked(path: Path, sha256: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from None
    if _sha256(data) != sha256:
        raise BundleError(f"{path}: SHA-256 differs from the manifest (truncated or changed)")
    return data


def weights_dtype(model, requested: str = "auto") -> str:
    """float32 when the weights come back whole within the limits, else float16."""
    if requested != "auto":
        return requested
    nbytes = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    return "float32" if nbytes <= FLOAT32_WEIGHTS_MAX else "float16"


def save_weight_chunks(model, out: str | Path, spec: dict, dtype: str = "auto",
                       chunk_bytes: int = CHUNK_BYTES) -> list[Path]:
    """model.weights as `weights.NNN.bin` chunks plus `weights.json` (names, shapes, offsets).

    `spec` is what rebuilds the model (name and ModelSpec fields), stored in the index.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = weights_dtype(model, dtype)
    entries, parts, offset = [], [], 0
    for variable in model.weights:
        value = np.asarray(variable.numpy(), np.float32)
        if dtype == "float16" and np.abs(value).max(initial=0) > np.finfo(np.float16).max:
            raise BundleError(f"{variable.path} overflows float16; save with dtype float32")
        raw = value.astype(dtype).tobytes()
        entries.append({"path": variable.path, "shape": list(value.shape), "offset": offset})
        parts.append(raw)
        offset += len(raw)
    blob = b"".join(parts)
    paths, chunks = [], []
    for i, start in enumerate(range(0, max(len(blob), 1), chunk_bytes)):
        path = out / f"weights.{i:03d}.bin"
        path.write_bytes(blob[start:start + chunk_bytes])
        paths.append(path)
        chunks.append({"file": path.name, "sha256": _sha256(blob[start:start + chunk_bytes])})
    index = {"dtype": dtype, "spec": spec, "variables": entries, "chunks": chunks, "bytes": len(blob)}
    (out / WEIGHTS_INDEX).write_text(json.dumps(index, indent=2))
    return [*paths, out / WEIGHTS_INDEX]


def read_weight_chunks(folder: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """{variable path: float32 array} and the index, every chunk checked."""
    folder = Path(folder)
    index = _read_json(folder, WEIGHTS_INDEX)
    blob = b"".join(_read_checked(folder / c["file"], c["sha256"]) for c in index["chunks"])
    if len(blob) != index["bytes"]:
        raise BundleError(f"{folder}: {len(blob)} weight bytes, the index says {index['bytes']}")
    values = {}
    for entry in index["variables"]:
        count = int(np.prod(entry["shape"]))
        flat = np.frombuffer(blob, index["dtype"], count, entry["offset"])
        values[entry["path"]] = flat.astype(np.float32).reshape(entry["shape"])
    return values, index


def assign_weights(model, values: dict[str, np.ndarray]) -> None:
    """Set every variable of `model` from `values` (in model.weights order) by its path."""
    missing = [v.path for v in model.weights if v.path not in values]
    if missing and [list(v.shape) for v in model.weights] == [list(a.shape) for a in values.values()]:
        # Same network, auto-numbered layer names (a second model built in one process): by order.
        values = dict(zip((v.path for v in model.weights), values.values()))
    elif missing:
        raise BundleError(f"the chunks lack {len(missing)} variable(s) of the model, e.g. {missing[0]}")
    for variable in model.weights:
        variable.assign(values[variable.path].astype(variable.dtype))


def build_from_spec(spec: dict):
    from training.models import ModelSpec, build_model
    fields = {k: v for k, v in spec.items() if k != "model"}
    return build_model(spec["model"], ModelSpec(**fields))


def keras_from_chunks(folder: str | Path, out: str | Path) -> Path:
    """Rebuild the trained model from its chunks and save it as a .keras (float32)."""
    values, index = read_weight_chunks(folder)
    model = build_from_spec(index["spec"])
    assign_weights(model, values)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return out
