"""The one inference runner for serving artefacts: TFLite through LiteRT, ONNX through ONNX Runtime.

Every runner takes a batch of raw face crops (N, H, W, C), float32 in 0..255, of any
batch size, and returns (N, classes) float32 probabilities in the artefact's own label
order. Quantised (int8) inputs and outputs are scaled here, in one place.

Neither runtime imports TensorFlow: LiteRT's standalone interpreter (`ai-edge-litert`)
loads in ~0.1 s against ~5 s for TensorFlow, which is what a one-shot `analyze` pays at
start-up. TensorFlow's own `tf.lite.Interpreter` is used only where LiteRT is missing
(a training box with TensorFlow but without the serving extras).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]
RUNTIMES = ("litert", "onnxruntime")


class InferenceError(RuntimeError):
    """An artefact that cannot be loaded or run; the message says which file and why."""


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf
    except ImportError:
        raise InferenceError("no TFLite runtime: pip install ai-edge-litert") from None
    return tf.lite.Interpreter


# Batch sizes the TFLite runner allocates for: a batch is zero-padded up to the next one.
# Re-allocating an interpreter for every new batch size cost ~5 ms a call (more than a
# small batch's inference); one interpreter per size, allocated once, costs a few MB.
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)


def bucket_for(n: int) -> int:
    """The allocated batch size that holds n faces (multiples of 64 past the last bucket)."""
    for size in BATCH_BUCKETS:
        if n <= size:
            return size
    return -(-n // BATCH_BUCKETS[-1]) * BATCH_BUCKETS[-1]


def tflite_runner(path: str | Path, threads: int | None = None) -> Runner:
    """A callable running a .tflite file on any batch size (XNNPACK on CPU)."""
    interpreter_class = _interpreter_class()

    def load():
        try:
            with warnings.catch_warnings():  # tf.lite's "moving to ai-edge-litert" notice
                warnings.simplefilter("ignore")
                return interpreter_class(model_path=str(path),
                                         num_threads=threads or os.cpu_count() or 1)
        except (ValueError, RuntimeError, OSError) as exc:
            raise InferenceError(f"cannot load TFLite model {path}: {exc}") from None

    first = load()
    inp, out = first.get_input_details()[0], first.get_output_details()[0]
    shape = [int(d) for d in inp["shape"][1:]]
    by_size: dict[int, object] = {}

    def interpreter_for(size: int):
        if size not in by_size:
            interpreter = first if not by_size else load()
            interpreter.resize_tensor_input(inp["index"], [size, *shape])
            interpreter.allocate_tensors()
            by_size[size] = interpreter
        return by_size[size]

    def run(batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        size = bucket_for(n)
        if size != n:
            batch = np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])
        interpreter = interpreter_for(size)
        interpreter.set_tensor(inp["index"], quantize(batch, inp))
        interpreter.invoke()
        return dequantize(interpreter.get_tensor(out["index"]), out)[:n]

    run.input_shape = tuple(shape)  # type: ignore[attr-defined]
    run.runtime = "litert" if "ai_edge_litert" in interpreter_class.__module__ else "tf.lite"  # type: ignore[attr-defined]
    return run


def onnx_runner(path: str | Path, threads: int | None = None, providers: list[str] | None = None) -> Runner:
    """A callable running an .onnx file; CUDA/TensorRT providers first when they are present."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise InferenceError("ONNX serving needs onnxruntime: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    available = ort.get_available_providers()
    wanted = providers or [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                                       "CPUExecutionProvider") if p in available]
    try:
        session = ort.InferenceSession(str(path), options, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise InferenceError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from None
    name = session.get_inputs()[0].name
    dims = session.get_inputs()[0].shape[1:]

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: batch.astype(np.float32)})[0], np.float32)

    run.input_shape = tuple(int(d) for d in dims)  # type: ignore[attr-defined]
    run.runtime = f"onnxruntime ({session.get_providers()[0]})"  # type: ignore[attr-defined]
    return run


def quantize(batch: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail.get("quantization", (0.0, 0))
    if detail["dtype"] in (np.int8, np.uint8) and scale:
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(batch / scale + zero), info.min, info.max).astype(detail["dtype"])
    return batch.astype(detail["dtype"])


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail.get("quantization", (0.0, 0))
    if values.dtype != np.float32 and scale:
        return (values.astype(np.float32) - zero) * scale
    return values.astype(np.float32)
