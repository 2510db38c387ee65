"""Training loop: data pipeline, model factory and callbacks kept apart, any Keras backend."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

from moodstream.emotions import EMOTIONS
from training import data as data_mod
from training.config import TrainConfig
from training.models import ModelSpec, build_model

log = logging.getLogger(__name__)


class MixupBatches(keras.utils.PyDataset):
    """Shuffled one-hot batches with optional mixup; plain numpy, so any backend runs it."""

    def __init__(self, x, y_onehot, batch_size, alpha, seed, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.alpha = x, y_onehot, batch_size, alpha
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i):
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        x, y = self.x[idx].astype("float32"), self.y[idx]
        if self.alpha > 0:
            lam = self.rng.beta(self.alpha, self.alpha, size=(len(idx), 1)).astype("float32")
            perm = self.rng.permutation(len(idx))
            x = x * lam[:, :, None, None] + x[perm] * (1 - lam[:, :, None, None])
            y = y * lam + y[perm] * (1 - lam)
        return x, y

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))


def machine_description() -> dict:
    """Where a run trained, for the model card: host, CPU/accelerators, backend."""
    devices = []
    try:
        devices = [str(d) for d in keras.distribution.list_devices()]
    except (RuntimeError, ValueError, AttributeError):  # some backends cannot enumerate devices
        pass
    return {"host": platform.node(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "devices": devices, "backend": keras.backend.backend()}


def learning_rate_at(cfg: TrainConfig, epoch: int) -> float:
    if cfg.schedule == "stages":
        edge = 0
        for lr, n in cfg.stages:
            edge += n
            if epoch < edge:
                return float(lr)
        return float(cfg.stages[-1][0])
    if epoch < cfg.warmup_epochs:
        return cfg.lr * (epoch + 1) / cfg.warmup_epochs
    progress = (epoch - cfg.warmup_epochs) / max(1, cfg.epochs - cfg.warmup_epochs)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def load_splits(cfg: TrainConfig) -> tuple[data_mod.Dataset, data_mod.Dataset]:
    size, ch = cfg.input_size, cfg.channels
    train = data_mod.merge([data_mod.read_dataset(s, cfg.data_usage, size, ch) for s in cfg.data])
    if cfg.val:
        val = data_mod.read_dataset(cfg.val, cfg.val_usage, size, ch)
    else:
        train, val = data_mod.stratified_split(train, cfg.holdout, cfg.seed)
    if cfg.balance in ("oversample", "undersample"):
        train = data_mod.resample(train, cfg.balance, cfg.seed)
    return train, val


def build_callbacks(cfg: TrainConfig, run: Path) -> list[keras.callbacks.Callback]:
    callbacks = [
        keras.callbacks.ModelCheckpoint(run / "best.keras", monitor="val_accuracy", mode="max",
                                        save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                      patience=cfg.early_stopping_patience, restore_best_weights=False),
        keras.callbacks.CSVLogger(run / "history.csv", append=True),
        keras.callbacks.BackupAndRestore(run / "backup"),  # resume after interruption
    ]
    if cfg.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                           patience=cfg.plateau_patience, min_lr=1e-6))
    else:
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda e, _lr: learning_rate_at(cfg, e)))
    return callbacks


def compile_model(cfg: TrainConfig) -> keras.Model:
    if cfg.precision != "float32":
        keras.mixed_precision.set_global_policy(cfg.precision)
    spec = ModelSpec(input_size=cfg.input_size, channels=cfg.channels, augment=cfg.augment,
                     serve_blur=cfg.serve_blur,
                     weights=cfg.weights, width=cfg.width, dropout=cfg.dropout)
    model = build_model(cfg.model, spec)
    lr = cfg.stages[0][0] if cfg.schedule == "stages" else cfg.lr
    if cfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)
    else:
        opt = keras.optimizers.Adam(lr)
    model.compile(optimizer=opt,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"], jit_compile=cfg.jit_compile)
    return model


def train(cfg: TrainConfig) -> Path:
    """Train per `cfg`; returns the run directory holding best.keras and the reports."""
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    started = time.time()
    train_set, val_set = load_splits(cfg)
    log.info("train %d images %s, val %d images", len(train_set), train_set.class_counts(), len(val_set))
    meta = {"config": cfg.to_dict(), "backend": keras.backend.backend(), "keras": keras.__version__,
            "train_fingerprint": train_set.fingerprint(), "val_fingerprint": val_set.fingerprint(),
            "train_counts": train_set.class_counts(), "val_counts": val_set.class_counts(),
            "skipped": train_set.skipped, "argv": sys.argv, "machine": machine_description()}
    (run / "run_config.json").write_text(json.dumps(meta, indent=2))

    model = compile_model(cfg)
    y_train = keras.utils.to_categorical(train_set.y, len(EMOTIONS))
    y_val = keras.utils.to_categorical(val_set.y, len(EMOTIONS))
    weights = data_mod.class_weights(train_set.y) if cfg.balance == "class_weights" else None
    verbose = 1 if sys.stdout.isatty() else 2
    fit_args = dict(epochs=cfg.total_epochs(), validation_data=(val_set.x.astype("float32"), y_val),
                    callbacks=build_callbacks(cfg, run), class_weight=weights, verbose=verbose)
    if cfg.mixup > 0:
        batches = MixupBatches(train_set.x, y_train, cfg.batch_size, cfg.mixup, cfg.seed)
        model.fit(batches, **fit_args)
    else:
        model.fit(train_set.x.astype("float32"), y_train, batch_size=cfg.batch_size, shuffle=True,
                  **fit_args)
    meta["train_seconds"] = round(time.time() - started, 1)
    meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta["val_metrics"] = write_run_reports(run, val_set)
    (run / "run_config.json").write_text(json.dumps(meta, indent=2))
    return run


def write_run_reports(run: Path, val_set: data_mod.Dataset) -> dict:
    """Evaluate the best checkpoint on the validation set; write the reports beside it."""
    from training.evaluate import evaluate_arrays
    from training.reports import write_reports
    from training.serving import KerasPredictor, inference_model, load_keras

    best = run / "best.keras"
    if not best.is_file():
        log.warning("no best.keras in %s (no epoch improved?); skipping reports", run)
        return {}
    predictor = KerasPredictor(inference_model(load_keras(best)))
    result = evaluate_arrays(predictor, val_set.x, val_set.y, tta=True)
    (run / "val_metrics.json").write_text(json.dumps(result, indent=2))
    write_reports(run, result, run / "history.csv", title="best.keras on validation (TTA)")
    log.info("best checkpoint: val accuracy %.4f, with flip TTA %.4f",
             result["accuracy_plain"], result["accuracy"])
    return {"accuracy": result["accuracy_plain"], "accuracy_tta": result["accuracy"]}
