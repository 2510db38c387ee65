"""The emotion model behind one batched call: card-driven loading of .tflite, .onnx or .keras.

TFLite runs on LiteRT and ONNX on ONNX Runtime (moodstream.inference), so a detector
serving either never imports TensorFlow; only a card that names the .keras model does.
On a machine where ONNX Runtime has its CUDA provider, the card's `serving.gpu` artefact
is served instead of the CPU one.

`models/<stem>.card.json` beside the model says which artefact to serve and in which
label order; without a card the .keras file is served. Every call takes a whole batch
of crops (N, size, size, 1) with raw 0..255 pixels and returns (N, 7) probabilities in
moodstream.emotions.EMOTIONS order.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from moodstream.emotions import EMOTIONS

log = logging.getLogger(__name__)


class ModelError(ValueError):
    """The model or its card cannot be used; the message says which file and why."""


def find_card(model_path: Path) -> Path | None:
    """`emotion.card.json` for `emotion.keras` / `emotion.tflite`, or the path itself."""
    if model_path.name.endswith(".card.json"):
        return model_path
    card = model_path.with_name(model_path.name.split(".")[0] + ".card.json")
    return card if card.is_file() else None


def read_jit_flag(model_path: Path) -> bool:
    """The card's serving.jit_compile (export measured XLA faster for this model)."""
    card_path = find_card(Path(model_path))
    if card_path is None:
        return False
    try:
        return bool(json.loads(card_path.read_text()).get("serving", {}).get("jit_compile"))
    except (OSError, ValueError, AttributeError):
        return False


def resolve_serving(model_path: Path) -> tuple[str, Path, list[str], int]:
    """(format, artefact path, label order, input size) from the card, or the .keras alone."""
    card_path = find_card(model_path)
    if card_path is None:
        if not model_path.exists():
            raise ModelError(f"model not found: {model_path}")
        fmt = model_path.suffix[1:] if model_path.suffix in (".tflite", ".onnx") else "keras"
        return fmt, model_path, list(EMOTIONS), 48
    try:
        card = json.loads(card_path.read_text())
        labels = list(card.get("labels") or EMOTIONS)
        size = int(card.get("input", {}).get("size", 48))
        serving = card.get("serving") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"cannot read model card {card_path}: {exc}") from None
    if sorted(labels) != sorted(EMOTIONS):
        raise ModelError(f"model card {card_path}: labels {labels} are not the 7 FER emotions")
    fmt, path = serving.get("format", "keras"), serving.get("path")
    gpu = serving.get("gpu") or {}
    if gpu.get("path") and (card_path.parent / gpu["path"]).exists() and gpu_available():
        fmt, path = gpu.get("format", "onnx"), gpu["path"]  # the card's GPU artefact
    if model_path.suffix in (".keras", ".tflite", ".onnx") and model_path.suffix[1:] != fmt:
        fmt, path = model_path.suffix[1:], model_path.name  # an explicit artefact wins
    artefact = card_path.parent / (path or model_path.name)
    if not artefact.exists():
        raise ModelError(f"model not found: {artefact} (named by {card_path})")
    return fmt, artefact, labels, size


class EmotionModel:
    """One compiled inference call per batch, outputs reordered to EMOTIONS."""

    def __init__(self, model_path: Path, threads: int | None = None):
        fmt, artefact, labels, size = resolve_serving(Path(model_path))
        self.format, self.path, self.size = fmt, artefact, size
        self._order = [labels.index(e) for e in EMOTIONS]  # card order -> EMOTIONS order
        if fmt == "tflite":
            self._run = _tflite_runner(artefact, threads)
        elif fmt == "onnx":
            self._run = _onnx_runner(artefact, threads)
        else:
            self._run = _keras_runner(artefact, size, read_jit_flag(Path(model_path)))
        self.device = (_device_name() if fmt == "keras"
                       else getattr(self._run, "runtime", fmt))
        self.calls = 0  # inference calls made, for batching tests and metrics

    def predict(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        self.calls += 1
        probs = np.asarray(self._run(np.asarray(crops, np.float32)), np.float32)[:, self._order]
        # An int8 model's dequantised softmax sums to 1 only within ~0.01: renormalise, since
        # sentiment is an expectation over these and reports sum them per emotion.
        return probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-6)

    def warm_up(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Trace / allocate before the first real frame so it is not slow."""
        for n in batch_sizes:
            self._run(np.zeros((n, self.size, self.size, 1), np.float32))


def _device_name() -> str:
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    return f"gpu ({gpus[0].name})" if gpus else "cpu"


def _float32_model(model):
    """A mixed-precision checkpoint rebuilt in float32 (faster on CPUs without bf16 units);
    the model itself when it computes in float32 already.

    Its variables are float32 already, so the weights copy over exactly.
    """
    import keras
    if all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in model.layers):
        return model

    def clone_layer(layer):
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        clone = keras.models.clone_model(model, clone_function=clone_layer)
    finally:
        keras.config.set_dtype_policy(previous)
    clone.set_weights(model.get_weights())
    return clone


def _keras_runner(path: Path, size: int, jit: bool = False):
    import keras
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        # Share the card with other processes instead of grabbing all of its memory.
        tf.config.experimental.set_memory_growth(gpu, True)
    try:
        model = keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"cannot load model {path}: {str(exc).splitlines()[0]}") from None
    # One trace for every batch size: the signature leaves the batch dimension open.
    spec = [tf.TensorSpec([None, size, size, 1], tf.float32)]
    variants = {"as saved": model}
    rebuilt = _float32_model(model)
    if rebuilt is not model:
        variants["float32"] = rebuilt
    fns = {name: tf.function(lambda x, m=m: m(x, training=False), input_signature=spec,
                             autograph=False, jit_compile=jit) for name, m in variants.items()}
    name = _fastest(fns, size) if len(fns) > 1 else next(iter(fns))
    log.info("keras model %s: serving the %s variant%s", path.name, name, " (XLA)" if jit else "")
    fn = fns[name]
    if not jit:
        return lambda batch: fn(tf.constant(batch)).numpy()

    def run_padded(batch: np.ndarray) -> np.ndarray:
        # XLA compiles once per shape: pad to a power of two so few shapes ever occur.
        n = len(batch)
        padded = np.zeros((1 << max(0, n - 1).bit_length(), *batch.shape[1:]), np.float32)
        padded[:n] = batch
        return fn(tf.constant(padded)).numpy()[:n]

    return run_padded


def _fastest(fns: dict, size: int, batch: int = 32, repeats: int = 3) -> str:
    """The variant with the shortest median call on this device.

    A mixed_bfloat16 checkpoint ran 2x faster as saved than rebuilt in float32 on an
    AVX512-BF16 CPU (57 vs 130 ms per 64 faces), and is slower on CPUs without bf16.
    """
    import time
    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 1)).astype(np.float32)
    timings = {}
    for name, fn in fns.items():
        fn(x)  # trace
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            np.asarray(fn(x))
            runs.append(time.perf_counter() - start)
        timings[name] = float(np.median(runs))
    log.info("inference ms per %d faces: %s", batch,
             ", ".join(f"{k} {v * 1000:.1f}" for k, v in timings.items()))
    return min(timings, key=timings.get)


def _tflite_runner(path: Path, threads: int | None):
    """LiteRT (no TensorFlow import) through moodstream's one inference runner."""
    from moodstream.inference import InferenceError, tflite_runner
    try:
        return tflite_runner(path, threads)
    except InferenceError as exc:
        raise ModelError(str(exc)) from None


def _onnx_runner(path: Path, threads: int | None):
    """ONNX Runtime: TensorRT / CUDA execution providers when present, else the CPU one."""
    from moodstream.inference import InferenceError, onnx_runner
    try:
        return onnx_runner(path, threads)
    except InferenceError as exc:
        raise ModelError(str(exc)) from None


def gpu_available() -> bool:
    """ONNX Runtime's CUDA build is installed (its providers list CUDA); read from the package
    metadata, so a CPU detector does not pay onnxruntime's import at start-up to learn it."""
    from importlib import metadata
    try:
        metadata.distribution("onnxruntime-gpu")
    except metadata.PackageNotFoundError:
        return False
    return True
