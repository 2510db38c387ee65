"""Train on a GPU machine from a device bundle, within a wall-clock budget (docs/GPU_TRAINING.md).

    KERAS_BACKEND=jax python -m training.device_train --bundle .device_bundle --out "$OUT" --minutes 7

Needs numpy, Keras (any backend), OpenCV (camera corruption) and scikit-learn: no TensorFlow,
no dataset folders. The loop is `train`'s own (compile_model, TrainBatches, build_callbacks:
best-by-val checkpoints of the EMA weights, CSV history); this adds the budget. It writes into
--out the best checkpoint's weights in chunks (training.device_bundle), history.csv and
metrics.json (FER2013 val accuracy, flip TTA, FER+ accuracy, ECE, corruptions, the machine).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import yaml

from moodstream.emotions import EMOTIONS
from training import device_bundle
from training.config import ConfigError, TrainConfig, build_config

log = logging.getLogger(__name__)


class WallClockBudget(keras.callbacks.Callback):
    """Stops training cleanly at a deadline or a step count, and fits a cosine into the budget.

    A stop mid-epoch ends that epoch early; Keras still validates it, so the checkpoint and
    EMA callbacks see it like any other. After two epochs (the first pays for compilation),
    the cosine's length is set to the epochs the measured pace fits before the deadline, at
    most the configured number, so the learning rate has annealed when time runs out.
    """

    def __init__(self, cfg: TrainConfig, seconds: float, max_steps: int = 0, clock=time.monotonic):
        super().__init__()
        self.cfg, self.seconds, self.max_steps, self.clock = cfg, seconds, max_steps, clock
        self.planned_epochs = cfg.epochs
        self.steps, self.epochs_done, self.stopped_by = 0, 0, "epochs"
        self.started = self.first_epoch_s = self.first_step_at = self.last_step_at = None

    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.started)

    def on_train_begin(self, logs=None):
        self.started = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == 1:
            self.first_step_at = self.clock()  # the first step pays for compilation
        self.last_step_at = self.clock()
        if self.max_steps and self.steps >= self.max_steps:
            self._stop("max_steps")
        elif self.remaining() <= 0:
            self._stop("budget")

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        if self.first_epoch_s is None:
            self.first_epoch_s = self.clock() - self.started
        if self.model.stop_training:
            return
        if self.cfg.schedule == "cosine" and self.epochs_done >= 2:
            pace = (self.clock() - self.started - self.first_epoch_s) / (self.epochs_done - 1)
            fits = self.epochs_done + int(max(0.0, self.remaining()) // pace)
            self.cfg.epochs = max(self.epochs_done, min(self.planned_epochs, fits))
        if self.epochs_done >= self.cfg.total_epochs():
            self._stop("epochs")

    def step_seconds(self) -> float | None:
        """Mean seconds of a step after the first (None before two steps)."""
        if self.steps < 2:
            return None
        return (self.last_step_at - self.first_step_at) / (self.steps - 1)

    def _stop(self, reason: str) -> None:
        self.model.stop_training = True
        self.stopped_by = reason


def config_from_manifest(manifest: dict, overrides: list[str], run_dir: Path) -> TrainConfig:
    """The packed config, validated as `train` validates it, with --set overrides."""
    run_dir.mkdir(parents=True, exist_ok=True)
    packed = run_dir / "packed_config.yaml"
    packed.write_text(yaml.safe_dump(manifest["config"]))
    return build_config(str(packed), overrides, run_dir=str(run_dir))


def model_spec(cfg: TrainConfig) -> dict:
    """What rebuilds the network on the CPU side (device_bundle.build_from_spec)."""
    return {"model": cfg.model, "input_size": cfg.input_size, "channels": cfg.channels,
            "augment": cfg.augment, "weights": "none", "width": cfg.width, "dropout": cfg.dropout}


def jit_augmentation(model: keras.Model) -> None:
    """Compile the whole train step under JAX, the augmentation layers included.

    RandomRotation/Translation/Zoom declare supports_jit=False (TensorFlow's XLA lacks their
    image transform op), which makes Keras run the *whole* step eagerly, op by op; under JAX
    their transform (map_coordinates) traces fine, so they are marked jittable here.
    """
    for layer in model._flatten_layers():
        layer.supports_jit = True
    model.jit_compile = True


def fit(cfg: TrainConfig, arrays: dict, seconds: float, max_steps: int, workers: int) -> WallClockBudget:
    from training.train import (FerPlusAccuracy, TrainBatches, build_callbacks, compile_model)
    keras.utils.set_random_seed(cfg.seed)
    model = compile_model(cfg)
    if keras.backend.backend() == "jax" and cfg.jit_compile:
        jit_augmentation(model)
    log.info("train step compiled: %s", model.jit_compile)
    budget = WallClockBudget(cfg, seconds, max_steps)
    extra = [FerPlusAccuracy(arrays["val_x"], arrays["val_majority"]), budget]
    batches = TrainBatches(arrays["train_x"], arrays["train_y"], cfg.batch_size, cfg.mixup, cfg.seed,
                           corruption=cfg.camera_corruption, workers=workers,
                           use_multiprocessing=False)
    y_val = keras.utils.to_categorical(arrays["val_y"], len(EMOTIONS))
    model.fit(batches, epochs=cfg.total_epochs(), validation_data=(arrays["val_x"].astype("float32"), y_val),
              callbacks=build_callbacks(cfg, Path(cfg.run_dir), extra), verbose=2)
    return budget


def measure(model: keras.Model, arrays: dict, corruptions: bool) -> dict:
    """evaluate's measures of the best checkpoint on the bundle's validation arrays."""
    from training.evaluate import corruption_table, evaluate_probs, ferplus_scores, predict_views
    from training.serving import KerasPredictor
    predictor = KerasPredictor(model)
    x, y = arrays["val_x"], arrays["val_y"]
    plain, mirrored = predict_views(predictor, x, tta=True, batch_size=512)
    result = evaluate_probs(y, plain, mirrored)
    votes, majority = arrays["val_votes"], arrays["val_majority"]
    result.update(ferplus_scores(plain, votes, majority))
    tta = ferplus_scores((plain + mirrored) / 2.0, votes, majority)
    result.update(ferplus_tta=tta["ferplus"], ece_tta=tta["ece"])
    if corruptions:
        rows = corruption_table(predictor, x, y, result["accuracy_plain"], batch_size=512)
        result["corruptions"] = rows
        result["corruption_worst_drop_pt"] = max(r["drop_pt"] for r in rows)
    return result


def machine() -> dict:
    from training.train import machine_description
    info = machine_description()
    if keras.backend.backend() == "jax":
        import jax
        info["device_kind"] = jax.devices()[0].device_kind
        info["jax"] = jax.__version__
    info["keras"] = keras.__version__
    return info


def run(args) -> dict:
    started = time.time()
    arrays, manifest = device_bundle.load(args.bundle)
    cfg = config_from_manifest(manifest, args.set, Path(args.run_dir))
    print(f"bundle: {len(arrays['train_x'])} train faces, {len(arrays['val_x'])} val; "
          f"backend {keras.backend.backend()}; budget {args.minutes} min", flush=True)
    budget = fit(cfg, arrays, 60 * args.minutes, args.max_steps, args.workers)
    trained_s = time.time() - started
    from training.serving import inference_model, load_keras
    best = inference_model(load_keras(Path(cfg.run_dir) / "best.keras"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chunks = device_bundle.save_weight_chunks(best, out, model_spec(cfg), args.weights_dtype)
    shutil.copy(Path(cfg.run_dir) / "history.csv", out / "history.csv")
    metrics = measure(best, arrays, corruptions=not args.no_corruptions)
    step_s = budget.step_seconds()
    metrics.update(epochs_run=budget.epochs_done, steps=budget.steps, stopped_by=budget.stopped_by,
                   step_seconds=None if step_s is None else round(step_s, 4),
                   cosine_epochs=cfg.epochs if cfg.schedule == "cosine" else None,
                   train_seconds=round(trained_s, 1), total_seconds=round(time.time() - started, 1),
                   config=cfg.to_dict(), machine=machine(),
                   bundle={k: manifest[k] for k in ("train_fingerprint", "val_fingerprint", "targets")},
                   weights=[p.name for p in chunks])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"val accuracy {metrics['accuracy_plain']:.4f} (flip TTA {metrics['accuracy']:.4f}), FER+ "
          f"{metrics['ferplus']['accuracy']:.4f}, ECE {metrics['ece']:.4f}; {budget.epochs_done} epochs, "
          f"stopped by {budget.stopped_by}; written to {out}", flush=True)
    return metrics


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.device_train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=".device_bundle", help="folder written by pack-device")
    p.add_argument("--out", required=True, help="where the weight chunks and metrics go ($OUT)")
    p.add_argument("--minutes", type=float, default=7.0, help="training wall-clock budget")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = no limit)")
    p.add_argument("--workers", type=int, default=4, help="threads preparing batches")
    p.add_argument("--run-dir", default="/tmp/moodstream-device-run", help="checkpoints, backup, history")
    p.add_argument("--weights-dtype", default="auto", choices=("auto", "float32", "float16"))
    p.add_argument("--no-corruptions", action="store_true", help="skip the corruption table")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a packed config key (JSON for lists/dicts)")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    if args.minutes <= 0:
        print("error: --minutes must be > 0", file=sys.stderr)
        return 2
    try:
        run(args)
    except (device_bundle.BundleError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
