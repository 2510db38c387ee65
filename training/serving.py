"""Batched inference on every artefact `export` can write: .keras, TFLite, ONNX, SavedModel.

All predictors take raw face crops (N, H, W, C) in [0, 255] (uint8 or float32) and
return softmax probabilities (N, 7) in moodstream.emotions.EMOTIONS order. The
Keras predictor runs on any backend; TFLite and ONNX go through the detector's own
runner (moodstream.inference: LiteRT, ONNX Runtime), SavedModel needs TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

SERVING_FORMATS = ("tflite", "onnx", "saved_model", "keras")


class ServingError(RuntimeError):
    """An artefact that cannot be loaded or run; the message says which and why."""


class Predictor(Protocol):
    input_shape: tuple[int, int, int]

    def predict(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray: ...


def _chunks(faces: np.ndarray, batch_size: int):
    for start in range(0, len(faces), batch_size):
        yield faces[start:start + batch_size]


def _tf():
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - only on TF-less machines
        raise ServingError("this serving format needs TensorFlow; use the .keras model instead") from None
    return tf


class KerasPredictor:
    """A Keras model run in inference mode; XLA-compiled on the TensorFlow backend.

    Every chunk is padded to `batch_size`, so XLA compiles one program per batch size
    instead of one per ragged tail.
    """

    def __init__(self, model, jit: bool = True):
        import keras
        self.model = model
        self.input_shape = tuple(int(d) for d in model.input_shape[1:])
        self._fn = None
        if keras.backend.backend() == "tensorflow":
            tf = _tf()
            self._fn = tf.function(lambda x: model(x, training=False), jit_compile=jit,
                                   reduce_retracing=True)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._fn is not None:
            return np.asarray(self._fn(batch))
        return np.asarray(self.model.predict_on_batch(batch))

    def predict(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
        out = []
        for chunk in _chunks(faces, batch_size):
            n = len(chunk)
            batch = np.zeros((batch_size, *chunk.shape[1:]), np.float32)
            batch[:n] = chunk
            out.append(self._run(batch)[:n])
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 7), np.float32)


class RunnerPredictor:
    """A serving artefact through moodstream's one inference runner (moodstream.inference):
    .tflite through LiteRT, .onnx through ONNX Runtime, exactly as the detector runs it."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from moodstream.inference import InferenceError, onnx_runner, tflite_runner
        factory = onnx_runner if Path(path).suffix == ".onnx" else tflite_runner
        try:
            self._run = factory(path, threads)
        except InferenceError as exc:
            raise ServingError(str(exc)) from None
        self.input_shape = self._run.input_shape
        self.runtime = self._run.runtime

    def predict(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
        out = [self._run(chunk.astype(np.float32)) for chunk in _chunks(faces, batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 7), np.float32)


class SavedModelPredictor:
    """A SavedModel directory written by `keras.Model.export` (its `serve` endpoint)."""

    def __init__(self, path: str | Path):
        tf = _tf()
        try:
            self.module = tf.saved_model.load(str(path))
        except (OSError, ValueError) as exc:
            raise ServingError(f"cannot load SavedModel {path}: {exc}") from None
        self._serve = self.module.serve
        spec = self._serve.input_signature[0]
        self.input_shape = tuple(int(d) for d in spec.shape[1:])

    def predict(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
        out = [np.asarray(self._serve(chunk.astype(np.float32))) for chunk in _chunks(faces, batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 7), np.float32)


# Training-only layers: identity at inference, so the serving graph drops them.
AUGMENTATION_LAYERS = ("RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom",
                       "RandomErasing", "RandomContrast", "RandomBrightness")


def _strip_for_inference(config: dict) -> dict:
    """Functional config without augmentation layers or recorded `training` kwargs, in float32.

    Keras records the resolved `training=True` default of preprocessing layers in the
    graph; replayed with training=None (a plain `model(x)`, or a SavedModel/TFLite
    trace) that flag leaks into every later layer and BatchNorm uses batch statistics.
    """
    removed: dict[str, list] = {}
    kept = []
    for layer in config["layers"]:
        if layer["class_name"] in AUGMENTATION_LAYERS:
            source = layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
            removed[layer["name"]] = source
            continue
        if "layers" in layer.get("config", {}):  # nested functional model (transfer backbones)
            layer = {**layer, "config": _strip_for_inference(layer["config"])}
        kept.append(layer)

    def resolve(history: list) -> list:
        while history[0] in removed:
            history = removed[history[0]]
        return list(history)

    def fix(node):
        if isinstance(node, dict):
            if "keras_history" in node:
                node = {**node, "keras_history": resolve(node["keras_history"])}
            out = {k: fix(v) for k, v in node.items() if k != "training"}
            if isinstance(out.get("dtype"), dict) and out["dtype"].get("class_name") == "DTypePolicy":
                out["dtype"] = {**out["dtype"], "config": {"name": "float32"}}
            return out
        if isinstance(node, (list, tuple)):
            return type(node)(fix(v) for v in node)
        return node

    return {**fix({**config, "layers": kept})}


def inference_model(model):
    """A float32 copy of `model` without augmentation layers or optimizer, same weights.

    A mixed_bfloat16 checkpoint is rebuilt with a float32 policy (its variables are
    float32 already, so the weights copy over exactly). Augmentation layers carry no
    weights, so the weight lists line up.
    """
    import keras
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        clone = keras.Model.from_config(_strip_for_inference(model.get_config()))
    finally:
        keras.config.set_dtype_policy(previous)
    clone.set_weights(model.get_weights())
    return clone


def load_keras(path: str | Path):
    """Load a .keras / .h5 model for inference (no optimizer, no compile)."""
    import keras

    path = Path(path)
    if not path.exists():
        raise ServingError(f"model not found: {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ServingError(f"cannot load model {path}: {str(exc).splitlines()[0]}") from None


def load_predictor(path: str | Path, fmt: str | None = None, jit: bool = True) -> Predictor:
    """Open any artefact by its format (guessed from the path when not given)."""
    path = Path(path)
    if fmt is None:
        fmt = (path.suffix[1:] if path.suffix in (".tflite", ".onnx")
               else "saved_model" if path.is_dir() else "keras")
    if not path.exists():
        raise ServingError(f"model not found: {path}")
    if fmt in ("tflite", "onnx"):
        return RunnerPredictor(path)
    if fmt == "saved_model":
        return SavedModelPredictor(path)
    if fmt == "keras":
        return KerasPredictor(inference_model(load_keras(path)), jit=jit)
    raise ServingError(f"unknown serving format {fmt!r}; one of {', '.join(SERVING_FORMATS)}")
