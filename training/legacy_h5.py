"""The legacy HDF5 copy of the model, as seed FER-DL shipped, proven to reload faithfully."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _layer(class_name: str, name: str, config: dict, source: str, in_shape: list) -> dict:
    tensor = {"class_name": "__keras_tensor__",
              "config": {"shape": in_shape, "dtype": "float32", "keras_history": [source, 0, 0]}}
    return {"module": "keras.layers", "class_name": class_name, "registered_name": None,
            "name": name, "config": {"name": name, **config},
            "inbound_nodes": [{"args": [tensor], "kwargs": {}}]}


def legacy_h5_model(model):
    """`model` rewired so the legacy HDF5 loader rebuilds it faithfully.

    Keras' H5 loader drops a multi-axis LayerNormalization `axis` (it keeps only
    1-element lists), silently turning per-image standardisation into a no-op over
    one channel. A weightless LayerNormalization over every non-batch axis equals
    Reshape(-1) -> LayerNormalization(-1) -> Reshape(back), which survives H5.
    """
    import keras
    config = model.get_config()
    layers = []
    for layer in config["layers"]:
        cfg = layer["config"]
        shape = (layer.get("build_config") or {}).get("input_shape")
        if (layer["class_name"] != "LayerNormalization" or not isinstance(cfg.get("axis"), list)
                or len(cfg["axis"]) < 2 or cfg.get("center") or cfg.get("scale") or not shape
                or sorted(a % len(shape) for a in cfg["axis"]) != list(range(1, len(shape)))):
            layers.append(layer)
            continue
        name, source = layer["name"], layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0]
        flat = [None, int(np.prod(shape[1:]))]
        layers.append(_layer("Reshape", f"{name}_flat", {"target_shape": [-1]}, source, list(shape)))
        layers.append(_layer("LayerNormalization", f"{name}_1d",
                             {**cfg, "name": f"{name}_1d", "axis": -1}, f"{name}_flat", flat))
        layers.append(_layer("Reshape", name, {"target_shape": list(shape[1:])}, f"{name}_1d", flat))
    rewired = keras.Model.from_config({**config, "layers": layers})
    rewired.set_weights(model.get_weights())
    return rewired


def save_legacy_h5(model, path: Path, probe: np.ndarray) -> Path | None:
    """Write the legacy .h5 and prove it reloads to the same predictions; else drop it."""
    import keras
    legacy = legacy_h5_model(model)
    legacy.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    faces = probe.astype(np.float32)
    gap = float(np.abs(np.asarray(reloaded(faces)) - np.asarray(model(faces, training=False))).max())
    if gap > 1e-4:
        log.warning("legacy %s reloads with different predictions (max gap %.3g); not shipped", path, gap)
        path.unlink()
        return None
    return path
