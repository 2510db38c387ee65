"""Export-time tuning of the inference-only blur (moodstream.model_layers.InferenceBlur).

The FER2013 Training split is blurred while PublicTest and real cameras are sharp, so
moodnet blurs its input at inference only. The best sigma depends on the trained
weights, so export re-measures it on the validation set and ships the best one. It is
one scalar chosen on validation data; the card records every sigma tried.
"""

from __future__ import annotations

import logging

import numpy as np

from training.evaluate import evaluate_arrays
from training.serving import KerasPredictor

log = logging.getLogger(__name__)

DEFAULT_SIGMAS = (0.0, 2.0, 2.5, 3.0, 3.5, 4.0)


def blur_sigma(model) -> float | None:
    """The model's serving blur sigma, or None when it has no InferenceBlur layer."""
    for layer in model.layers:
        if type(layer).__name__ == "InferenceBlur":
            return float(layer.sigma)
    return None


def with_blur(model, sigma: float):
    """A copy of `model` whose InferenceBlur layers use `sigma` (the layer has no weights)."""
    import keras
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"].endswith("InferenceBlur"):
            layer["config"]["sigma"] = float(sigma)
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def tune_blur(model, x: np.ndarray, y: np.ndarray, sigmas=DEFAULT_SIGMAS):
    """Pick the validation-best blur sigma; returns (model, report). No blur layer: unchanged.

    Ties keep the trained sigma, then the smaller one (less blur, less compute).
    """
    trained = blur_sigma(model)
    if trained is None:
        return model, None
    candidates = sorted({float(s) for s in sigmas} | {trained})
    accuracy = {}
    for sigma in candidates:
        accuracy[sigma] = evaluate_arrays(KerasPredictor(with_blur(model, sigma), jit=False), x, y)["accuracy"]
        log.info("serve_blur sigma %.2f: val accuracy %.4f", sigma, accuracy[sigma])
    best = max(candidates, key=lambda s: (accuracy[s], s == trained, -s))
    report = {"trained_sigma": trained, "chosen_sigma": best,
              "val_accuracy_by_sigma": {f"{s:g}": a for s, a in accuracy.items()},
              "note": "sigma chosen on the validation set the card's metrics use"}
    return (model if best == trained else with_blur(model, best)), report


def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix M with M @ row == InferenceBlur's 1-D pass (Gaussian, symmetric border)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype="float64")
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    m = np.zeros((n, n), "float64")
    for i in range(n):
        for tap, weight in zip(t.astype(int), g):
            j = i + tap
            j = -j - 1 if j < 0 else (2 * n - j - 1 if j >= n else j)  # numpy/tf "symmetric" pad
            m[i, j] += weight
    return m.astype("float32")


def _node(class_name: str, name: str, config: dict, source: str, shape: list) -> dict:
    tensor = {"class_name": "__keras_tensor__",
              "config": {"shape": shape, "dtype": "float32", "keras_history": [source, 0, 0]}}
    return {"module": "keras.layers", "class_name": class_name, "registered_name": None, "name": name,
            "config": {"name": name, "dtype": "float32", **config},
            "inbound_nodes": [{"args": [tensor], "kwargs": {}}]}


def matmul_blur(model):
    """`model` with each grey InferenceBlur replaced by two 48x48 matrix products.

    Same numbers (the blur is linear), built-in layers only, and far cheaper to serve:
    a one-channel depthwise convolution uses a CPU's SIMD lanes poorly, while the
    equivalent Dense layers run as matrix multiplications (measured ~1.5x faster for
    the whole TFLite model). Colour inputs keep the original layer.
    """
    import keras
    config = model.get_config()
    layers, matrices = [], {}
    for layer in config["layers"]:
        shape = (layer.get("build_config") or {}).get("input_shape")
        sigma = layer["config"].get("sigma", 0.0)
        if not layer["class_name"].endswith("InferenceBlur") or not shape or shape[-1] != 1 or sigma <= 0:
            layers.append(layer)
            continue
        name, (h, w) = layer["name"], shape[1:3]
        source = layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0]
        dense = {"use_bias": False, "activation": "linear"}
        layers += [_node("Reshape", f"{name}_2d", {"target_shape": [h, w]}, source, list(shape)),
                   _node("Dense", f"{name}_rows", {"units": w, **dense}, f"{name}_2d", [None, h, w]),
                   _node("Permute", f"{name}_t", {"dims": [2, 1]}, f"{name}_rows", [None, h, w]),
                   _node("Dense", f"{name}_cols", {"units": h, **dense}, f"{name}_t", [None, w, h]),
                   _node("Permute", f"{name}_back", {"dims": [2, 1]}, f"{name}_cols", [None, w, h]),
                   _node("Reshape", name, {"target_shape": [h, w, 1]}, f"{name}_back", [None, h, w])]
        matrices[f"{name}_rows"] = blur_matrix(w, sigma).T  # Dense computes x @ kernel
        matrices[f"{name}_cols"] = blur_matrix(h, sigma).T
    if not matrices:
        return model
    rewired = keras.Model.from_config({**config, "layers": layers})
    for layer in rewired.layers:
        if layer.name in matrices:
            layer.set_weights([matrices[layer.name]])
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return rewired
