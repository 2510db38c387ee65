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
from training import ferplus
from training.config import TrainConfig
from training.corruptions import random_camera_corruption
from training.models import ModelSpec, build_model

log = logging.getLogger(__name__)


class TrainBatches(keras.utils.PyDataset):
    """Shuffled batches of (soft) targets with optional camera corruption and mixup.

    Plain numpy and OpenCV, so any backend runs it.
    """

    def __init__(self, x, y, batch_size, alpha, seed, corruption=0.0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.alpha = x, y, batch_size, alpha
        self.corruption = corruption
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i):
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        x, y = self.x[idx], self.y[idx]
        if self.corruption > 0:
            x = random_camera_corruption(x, self.rng, self.corruption)
        x = x.astype("float32")
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


class FerPlusAccuracy(keras.callbacks.Callback):
    """Adds val_ferplus_accuracy (clear FER+ majorities) to each epoch's logs, for the CSV."""

    def __init__(self, x: np.ndarray, majority: np.ndarray):
        super().__init__()
        keep = majority >= 0
        self.x, self.majority = x[keep].astype("float32"), majority[keep]

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and len(self.x):
            probs = self.model.predict(self.x, batch_size=256, verbose=0)
            logs["val_ferplus_accuracy"] = float((probs.argmax(1) == self.majority).mean())


class EpochBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore's per-epoch backup; restoring is restore_backup's job, before fit().

    Keras' own restore also loads the optimizer state (Adam moments, EMA); the one resume of
    the stage-2 run done that way ran its next epoch 3x slower (549 s against 150-200 s),
    and the resume after it, weights and epoch only, did not (169 s). Either way, train
    accuracy jumps 4-5 points above validation after a resume (seen at every resume, in
    two runs) while validation keeps improving; the cause is not identified yet.
    """

    def on_train_begin(self, logs=None):
        pass


def backup_epoch(run: Path) -> int:
    """The epoch a run resumes at: the last finished one in its backup, 0 without one."""
    backup = run / "backup"
    weights, state = backup / "latest.weights.h5", backup / "training_metadata.json"
    if not (weights.is_file() and state.is_file()):
        return 0
    return int(json.loads(state.read_text())["epoch"])


def restore_backup(model: keras.Model, run: Path) -> int:
    """Load the model weights of the last finished epoch's backup; returns the epoch to start at."""
    epoch = backup_epoch(run)
    if epoch:
        model.load_weights(run / "backup" / "latest.weights.h5")  # optimizer not built: its state is skipped
        log.info("resumed %s at epoch %d (weights only; fresh optimizer state)", run, epoch)
    return epoch


def stream_seed(seed: int, initial_epoch: int) -> int:
    """The seed of the random streams (batch order, camera corruption, the augmentation
    layers) for a run starting at initial_epoch. A resumed run that reused the run's own seed
    replayed, image for image, the augmented batches of the first epochs, which the model had
    already fitted: train accuracy then rose 4-5 points above val for as many epochs as ran
    before the stop (stage 2: stopped after 12, the jump at 13-25)."""
    return seed if not initial_epoch else seed + 100_003 * initial_epoch


def build_callbacks(cfg: TrainConfig, run: Path,
                    extra: list[keras.callbacks.Callback] = ()) -> list[keras.callbacks.Callback]:
    # SwapEMAWeights goes first: the other callbacks then validate and save the averaged weights.
    swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema else []
    callbacks = [*swap, *extra,
        keras.callbacks.ModelCheckpoint(run / "best.keras", monitor="val_accuracy", mode="max",
                                        save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                      patience=cfg.early_stopping_patience, restore_best_weights=False),
        keras.callbacks.CSVLogger(run / "history.csv", append=True),
        EpochBackup(run / "backup"),  # resume after interruption (restore_backup)
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
                     weights=cfg.weights, width=cfg.width, dropout=cfg.dropout)
    model = build_model(cfg.model, spec)
    lr = cfg.stages[0][0] if cfg.schedule == "stages" else cfg.lr
    ema = dict(use_ema=cfg.ema > 0, ema_momentum=cfg.ema or 0.99)
    if cfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay, **ema)
    else:
        opt = keras.optimizers.Adam(lr, **ema)
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

    targets = training_targets(cfg, train_set)
    meta["targets"] = targets.counts
    (run / "run_config.json").write_text(json.dumps(meta, indent=2))
    print(f"training in {run}; if it stops, resume with the same command "
          f"(python -m training train ... --run-dir {run})", flush=True)
    initial_epoch = backup_epoch(run)
    seed = stream_seed(cfg.seed, initial_epoch)
    keras.utils.set_random_seed(seed)  # before the layers' seeds
    model = compile_model(cfg)
    restore_backup(model, run)
    if cfg.init_from and not initial_epoch:  # a warm restart (a resumed run has its own weights)
        model.load_weights(Path(cfg.init_from).expanduser())
        log.info("weights initialised from %s", cfg.init_from)
    y_val = keras.utils.to_categorical(val_set.y, len(EMOTIONS))
    weights = data_mod.class_weights(train_set.y) if cfg.balance == "class_weights" else None
    verbose = 1 if sys.stdout.isatty() else 2
    fit_args = dict(epochs=cfg.total_epochs(), initial_epoch=initial_epoch,
                    validation_data=(val_set.x.astype("float32"), y_val),
                    callbacks=build_callbacks(cfg, run, ferplus_callback(cfg, val_set)),
                    class_weight=weights, verbose=verbose)
    batches = TrainBatches(train_set.x[targets.keep], targets.y, cfg.batch_size, cfg.mixup,
                           seed, corruption=cfg.camera_corruption)
    model.fit(batches, **fit_args)
    meta["train_seconds"] = round(time.time() - started, 1)
    meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta["val_metrics"] = write_run_reports(run, val_set)
    (run / "run_config.json").write_text(json.dumps(meta, indent=2))
    return run


def training_targets(cfg: TrainConfig, train_set: data_mod.Dataset) -> ferplus.Targets:
    votes = None
    if cfg.ferplus_train:
        if train_set.paths is None:
            raise data_mod.DatasetError("FER+ votes need a class-folder training set (image paths)")
        votes = ferplus.read_votes(cfg.ferplus_train)
    targets = ferplus.build_targets(train_set.y, train_set.paths, votes, cfg.label_mode,
                                    cfg.fer_label_weight)
    log.info("label mode %s: %s", cfg.label_mode, targets.counts)
    return targets


def ferplus_callback(cfg: TrainConfig, val_set: data_mod.Dataset) -> list[keras.callbacks.Callback]:
    if not cfg.ferplus_val or val_set.paths is None:
        return []
    _, majority = ferplus.align(val_set.paths, ferplus.read_votes(cfg.ferplus_val))
    return [FerPlusAccuracy(val_set.x, majority)]


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
