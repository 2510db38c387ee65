"""`python -m training export`: the shipped artefacts and their model card.

Writes, into the output folder: `<name>.keras` (float32 inference model, no optimizer),
legacy `<name>.h5` (as seed FER-DL shipped), the serving artefact (the fastest of the
measured candidates that keeps accuracy within ACCURACY_TOLERANCE of the float32
model) and `<name>.card.json`, the contract the detector reads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodstream.emotions import EMOTIONS
from training import data as data_mod
from training.legacy_h5 import save_legacy_h5
from training.evaluate import (corruption_table, evaluate_arrays, evaluate_probs, ferplus_metrics,
                               predict_views)
from training.serving import (KerasPredictor, RunnerPredictor, ServingError, inference_model,
                              load_keras)

log = logging.getLogger(__name__)

ACCURACY_TOLERANCE = 0.005  # a candidate may lose at most 0.5 pt of accuracy to be served
SPEED_BATCH = 64  # the detector's batch size for the speed comparison
CALIBRATION_IMAGES = 500  # representative faces for int8 quantization


class ExportError(ValueError):
    """Export cannot proceed (missing run, missing data); the message says why."""


@dataclass
class Candidate:
    format: str  # "tflite" or "keras"
    variant: str  # tflite: float32 | dynamic_range | int8; keras: xla | graph (tf.function)
    path: Path
    accuracy: float = 0.0
    faces_per_s: float = 0.0
    faces_per_cpu_s: float = 0.0  # cost per face, which other load on the machine barely moves
    size_bytes: int = 0

    def row(self) -> dict:
        return {"format": self.format, "variant": self.variant, "path": self.path.name,
                "accuracy": self.accuracy, "faces_per_s_batch64": round(self.faces_per_s, 1),
                "faces_per_cpu_s_batch64": round(self.faces_per_cpu_s, 1),
                "size_bytes": self.size_bytes}


def run_metadata(model_path: Path) -> dict:
    """run_config.json written by `train` beside the checkpoint, if there is one."""
    meta = model_path.parent / "run_config.json"
    return json.loads(meta.read_text()) if meta.is_file() else {}


def resolve_model(run: str | None, model: str | None) -> Path:
    path = Path(model) if model else Path(run or "") / "best.keras"
    if not path.is_file():
        raise ExportError(f"model not found: {path} (pass --run RUN_DIR or --model FILE.keras)")
    return path


def throughput(predictor, faces: np.ndarray, batch_size: int, seconds: float = 2.0) -> float:
    """Faces per wall-clock second at a fixed batch size, after one warm-up batch."""
    return measure_rates(predictor, faces, batch_size, seconds)[0]


def measure_rates(predictor, faces: np.ndarray, batch_size: int,
                  seconds: float) -> tuple[float, float]:
    """(faces per wall second, faces per CPU second of this process) at one batch size."""
    batch = np.resize(faces, (batch_size, *faces.shape[1:]))
    predictor.predict(batch, batch_size=batch_size)
    done, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds or done == 0:
        predictor.predict(batch, batch_size=batch_size)
        done += batch_size
    return done / (time.perf_counter() - start), done / max(1e-9, time.process_time() - cpu_start)


def _saved_model(model, directory: Path) -> Path:
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def convert_tflite(saved_model_dir: Path, out: Path, variant: str,
                   calibration: np.ndarray | None = None) -> Path:
    """SavedModel -> .tflite: float32, dynamic-range or int8 (float in/out) quantization."""
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if variant in ("dynamic_range", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "int8":
        if calibration is None or not len(calibration):
            raise ExportError("int8 quantization needs calibration images from the training data")

        def representative():
            for face in calibration:
                yield [face[None].astype(np.float32)]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    out.write_bytes(converter.convert())
    return out


def export_onnx(model, path: Path) -> Path | None:
    """The float32 model as ONNX (tf2onnx): the GPU artefact, run by ONNX Runtime's CUDA or
    TensorRT provider. None, with a warning, when the converter is not installed or fails."""
    try:
        model(np.zeros((1, *model.input_shape[1:]), np.float32))  # export needs a called model
        model.export(str(path), format="onnx", verbose=False)
    except Exception as exc:  # tf2onnx missing or failing: ship without the GPU artefact
        log.warning("ONNX export failed, no GPU artefact: %s", str(exc).splitlines()[0][:200])
        return None
    return path


def build_candidates(model, workdir: Path, calibration: np.ndarray | None) -> list[Candidate]:
    """Every serving artefact worth measuring on this machine, written into `workdir`."""
    candidates = [Candidate("keras", "xla", workdir / "model.keras"),
                  Candidate("keras", "graph", workdir / "model.keras")]
    model.save(candidates[0].path)
    try:
        import tensorflow  # noqa: F401  (TFLite needs TensorFlow)
    except ImportError:
        log.warning("TensorFlow missing: only the .keras serving format is possible")
        return candidates
    onnx = export_onnx(model, workdir / "model.onnx")
    if onnx is not None:
        candidates.append(Candidate("onnx", "float32", onnx))
    saved = _saved_model(model, workdir / "saved_model")
    for variant in ("float32", "dynamic_range", "int8"):
        path = workdir / f"model_{variant}.tflite"
        try:
            convert_tflite(saved, path, variant, calibration)
        except Exception as exc:  # converter errors are many and untyped; a failed variant is skipped
            log.warning("TFLite %s conversion failed, not a candidate: %s", variant, exc)
            continue
        candidates.append(Candidate("tflite", variant, path))
    return candidates


def measure(candidates: list[Candidate], model, val: data_mod.Dataset, seconds: float = 2.0,
            rounds: int = 3) -> None:
    """Fill accuracy (on `val`) and batch-64 faces/s for every candidate.

    Speed is timed in interleaved rounds and the best round kept, so a burst of load
    from other processes on a shared CPU does not decide the choice on its own.
    """
    predictors = []
    for cand in candidates:
        if cand.format == "keras":
            predictor = KerasPredictor(model, jit=cand.variant == "xla")
        else:
            predictor = RunnerPredictor(cand.path)
        cand.accuracy = evaluate_arrays(predictor, val.x, val.y)["accuracy"]
        cand.size_bytes = cand.path.stat().st_size
        predictors.append(predictor)
    for _ in range(rounds):
        for cand, predictor in zip(candidates, predictors):
            wall, cpu = measure_rates(predictor, val.x, SPEED_BATCH, seconds / rounds)
            cand.faces_per_s = max(cand.faces_per_s, wall)
            cand.faces_per_cpu_s = max(cand.faces_per_cpu_s, cpu)
    for cand in candidates:
        log.info("candidate %s/%s: accuracy %.4f, %.0f faces/s (%.0f per CPU-s) at batch %d, %d bytes",
                 cand.format, cand.variant, cand.accuracy, cand.faces_per_s, cand.faces_per_cpu_s,
                 SPEED_BATCH, cand.size_bytes)


def reference_accuracy(candidates: list[Candidate]) -> float:
    """Accuracy of the float32 Keras model, the yardstick every candidate is held to."""
    return next(c for c in candidates if c.variant == "xla").accuracy


def choose(candidates: list[Candidate]) -> Candidate:
    """Cheapest candidate (faces per CPU-second) within ACCURACY_TOLERANCE of the float32 model.

    CPU time per face rather than wall-clock speed: on a machine shared with training
    jobs, wall-clock rates swing with other load, the cost of a face does not.
    """
    reference = reference_accuracy(candidates)
    eligible = [c for c in candidates if c.accuracy >= reference - ACCURACY_TOLERANCE]
    return max(eligible, key=lambda c: c.faces_per_cpu_s)


def machine() -> dict:
    import keras
    info = {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "os": platform.platform(), "backend": keras.backend.backend(),
            "keras": keras.__version__}
    try:
        import tensorflow as tf
        info["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return info


def _load_eval_sets(meta: dict, val_source: str | None, calib_source: str | None, size: int,
                    channels: int) -> tuple[data_mod.Dataset, np.ndarray | None]:
    """Validation set (the run's, unless overridden) and int8 calibration faces from training data."""
    cfg = meta.get("config", {})
    source = val_source or cfg.get("val")
    if not source:
        raise ExportError("no validation data: pass --val DIR_OR_CSV (the run used a holdout)")
    val = data_mod.read_dataset(source, None if val_source else cfg.get("val_usage"), size, channels)
    calib_sources = [calib_source] if calib_source else cfg.get("data", [])
    calibration = None
    if calib_sources:
        usage = None if calib_source else cfg.get("data_usage")
        train = data_mod.read_dataset(calib_sources[0], usage, size, channels)
        pick = np.random.default_rng(0).permutation(len(train))[:CALIBRATION_IMAGES]
        calibration = train.x[pick]
    return val, calibration


def quality_metrics(predictor, val: data_mod.Dataset, plain: dict, votes_csv: str | None,
                    plain_probs: np.ndarray, tta_probs: np.ndarray) -> dict:
    """FER+ accuracy and ECE (plain and with flip TTA) and the camera-corruption table."""
    out: dict = {}
    if votes_csv and val.paths is not None:
        out.update(ferplus_metrics(plain_probs, val.paths, votes_csv))
        tta_fp = ferplus_metrics(tta_probs, val.paths, votes_csv)
        out["ferplus_tta"], out["ece_tta"] = tta_fp["ferplus"], tta_fp["ece"]
    rows = corruption_table(predictor, val.x, val.y, plain["accuracy"])
    out["corruptions"] = rows
    out["corruption_worst_drop_pt"] = max(r["drop_pt"] for r in rows)
    return out


def _stage_serving(chosen: Candidate, candidates: list[Candidate], stage: Path,
                   name: str) -> tuple[Path, Path | None]:
    """Copy the CPU serving artefact and the ONNX (GPU) artefact into `stage`; record the
    shipped file names in the candidates instead of the temporary ones."""
    final = stage / f"{name}.{chosen.format}"
    if chosen.format != "keras":
        shutil.copyfile(chosen.path, final)
    onnx = next((c for c in candidates if c.format == "onnx"), None)
    gpu = None
    if onnx is not None:
        gpu = stage / f"{name}.onnx"
        if onnx is not chosen:
            shutil.copyfile(onnx.path, gpu)
    for cand in candidates:
        cand.path = (final if cand is chosen else gpu if cand is onnx
                     else Path(cand.path.name))
    return final, gpu


RUNTIMES = {"tflite": "litert (ai-edge-litert, XNNPACK)", "onnx": "onnxruntime",
            "keras": "tensorflow"}


def write_card(out: Path, name: str, chosen: Candidate, candidates: list[Candidate], tta: dict,
               plain: dict, meta: dict, input_shape: tuple, val_source: str, has_h5: bool,
               quality: dict, gpu: Path | None = None) -> Path:
    cfg = meta.get("config", {})
    trained_at = meta.get("finished_at") or meta.get("checkpoint_modified")
    card = {
        "name": cfg.get("model", name), "labels": list(EMOTIONS),
        "input": {"size": int(input_shape[0]), "channels": int(input_shape[2]), "dtype": "float32",
                  "range": [0, 255], "layout": "NHWC"},
        "serving": {"format": chosen.format, "path": chosen.path.name, "variant": chosen.variant,
                    "runtime": RUNTIMES[chosen.format], "jit_compile": chosen.variant == "xla",
                    "gpu": None if gpu is None else {
                        "format": "onnx", "path": gpu.name, "variant": "float32",
                        "runtime": "onnxruntime (TensorRT or CUDA execution provider)"},
                    "batch_advice": "batch up to 64 faces per call; larger batches add latency "
                                    "for little extra throughput on a small CPU",
                    "chosen_by": f"most faces per CPU-second at batch {SPEED_BATCH} within "
                                 f"{ACCURACY_TOLERANCE * 100:.1f} pt of the float32 model",
                    "candidates": [c.row() for c in candidates]},
        "metrics": {"val_accuracy": plain["accuracy"], "val_accuracy_tta": tta["accuracy"],
                    "val_accuracy_float32_keras": reference_accuracy(candidates),
                    "val_n": plain["n"], "val_data": val_source,
                    "val_fingerprint": meta.get("val_fingerprint"),
                    "per_class": plain["per_class"], "per_class_tta": tta["per_class"],
                    "confusion_matrix": plain["confusion_matrix"], "measured_with": chosen.path.name,
                    **quality},
        "training": {"data_fingerprint": meta.get("train_fingerprint"),
                     "train_counts": meta.get("train_counts"), "config": cfg,
                     "backend": meta.get("backend"),
                     "machine": meta.get("machine") or "not recorded by the run; see exported.machine",
                     "train_seconds": meta.get("train_seconds"), "trained_at": trained_at},
        "files": {"keras": f"{name}.keras", "h5": f"{name}.h5" if has_h5 else None},
        "exported": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "machine": machine()},
    }
    path = out / f"{name}.card.json"
    path.write_text(json.dumps(card, indent=2))
    return path


def export(run: str | None = None, model: str | None = None, out: str | Path = "models",
           name: str = "emotion", val: str | None = None, calibration_data: str | None = None,
           speed_seconds: float = 2.0, ferplus: str | None = None) -> Path:
    """Write <name>.keras/.h5/serving artefact/card.json into `out`; returns the card path."""
    source = resolve_model(run, model)
    meta = run_metadata(source)
    meta["checkpoint_modified"] = dt.datetime.fromtimestamp(
        source.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    net = inference_model(load_keras(source))
    shape = tuple(int(d) for d in net.input_shape[1:])
    val_set, calibration = _load_eval_sets(meta, val, calibration_data, shape[0], shape[2])
    votes_csv = ferplus or (None if val else meta.get("config", {}).get("ferplus_val"))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Everything is staged beside `out` and moved in at the end, card last: a failed export
    # never leaves a card that points at missing or mismatched files.
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
        work, stage = Path(tmp), Path(tmp) / "stage"
        stage.mkdir()
        candidates = build_candidates(net, work, calibration)
        measure(candidates, net, val_set, speed_seconds)
        chosen = choose(candidates)
        net.save(stage / f"{name}.keras")
        h5 = save_legacy_h5(net, stage / f"{name}.h5", val_set.x[:32])  # as seed FER-DL shipped
        final, gpu = _stage_serving(chosen, candidates, stage, name)
        predictor = (KerasPredictor(net, jit=chosen.variant == "xla") if chosen.format == "keras"
                     else RunnerPredictor(final))
        plain_probs, mirrored = predict_views(predictor, val_set.x, tta=True)
        plain, tta = evaluate_probs(val_set.y, plain_probs), evaluate_probs(val_set.y, plain_probs, mirrored)
        val_source = val or meta.get("config", {}).get("val", "")
        quality = quality_metrics(predictor, val_set, plain, votes_csv, plain_probs,
                                  (plain_probs + mirrored) / 2.0)
        card = write_card(stage, name, chosen, candidates, tta, plain, meta, shape, str(val_source),
                          h5 is not None, quality, gpu)
        for staged in sorted(stage.iterdir(), key=lambda p: p == card):  # the card goes last
            os.replace(staged, out / staged.name)
    card, final = out / card.name, out / final.name
    stale = [f"{name}.h5"] if h5 is None else []
    stale += [f"{name}.tflite"] if chosen.format != "tflite" else []
    stale += [f"{name}.onnx"] if gpu is None else []
    for leftover in stale:  # from an earlier export; the card no longer names them
        (out / leftover).unlink(missing_ok=True)
    log.info("serving %s (%s): val accuracy %.4f, with TTA %.4f", final, chosen.variant,
             plain["accuracy"], tta["accuracy"])
    return card


__all__ = ["export", "ExportError", "ServingError", "choose", "convert_tflite", "throughput"]
