"""A real (tiny) training run writes its checkpoint, config, history and reports; resume works."""

from __future__ import annotations

import csv
import json

import keras
import pytest

from training.config import build_config
from training.train import learning_rate_at

pytestmark = pytest.mark.slow


def test_one_epoch_run_writes_everything(tiny_run):
    run = tiny_run["run"]
    for name in ("best.keras", "history.csv", "run_config.json", "val_metrics.json",
                 "confusion_matrix.png", "curves.png", "classification_report.txt",
                 "per_class_accuracy.json", "per_class_accuracy.png"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "run_config.json").read_text())
    assert meta["config"]["width"] == 0.25 and meta["backend"] == keras.backend.backend()
    assert len(meta["train_fingerprint"]) == 16 and meta["machine"]["cpu_count"] >= 1
    assert 0.0 <= meta["val_metrics"]["accuracy"] <= 1.0
    report = (run / "classification_report.txt").read_text()
    assert "surprise" in report and "macro f1" in report
    assert (run / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interrupted_run_resumes_from_backup(tiny_run, tmp_path, monkeypatch):
    """Stop after epoch 1 of 3, run again: it continues at epoch 2, not from scratch."""
    import training.train as train_mod

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    original = train_mod.build_callbacks
    cfg = build_config(None, ["width=0.25", "batch_size=16", "jit_compile=false", "schedule=cosine",
                              "epochs=3"], data=[str(tiny_run["train"])], val=str(tiny_run["val"]),
                       run_dir=str(tmp_path / "run"))
    monkeypatch.setattr(train_mod, "build_callbacks",
                        lambda c, r, extra=(): original(c, r, extra) + [StopAfterFirstEpoch()])
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(cfg)
    assert (tmp_path / "run" / "backup").is_dir()
    monkeypatch.setattr(train_mod, "build_callbacks", original)
    train_mod.train(cfg)
    with (tmp_path / "run" / "history.csv").open() as fh:
        epochs = [int(row["epoch"]) for row in csv.DictReader(fh)]
    assert epochs == [0, 1, 2]  # epoch 0 once: the second run resumed after it


def test_warm_restart_with_ema_starts_from_the_checkpoint(tiny_run, tmp_path):
    """init_from loads the checkpoint's weights; with ema the saved best.keras holds averaged weights."""
    import numpy as np

    import training.train as train_mod

    start = tiny_run["run"] / "best.keras"
    cfg = build_config(None, ["width=0.25", "batch_size=16", "jit_compile=false", "schedule=cosine",
                              "epochs=1", "lr=0.0", "ema=0.9", f"init_from={start}"],
                       data=[str(tiny_run["train"])], val=str(tiny_run["val"]),
                       run_dir=str(tmp_path / "warm"))
    run = train_mod.train(cfg)
    before = keras.saving.load_model(start).get_layer("probs").get_weights()[0]
    after = keras.saving.load_model(run / "best.keras").get_layer("probs").get_weights()[0]
    # lr 0: the raw weights never move, so their average equals the checkpoint's weights
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_config_rejects_a_bad_ema_or_missing_checkpoint(tmp_path):
    from training.config import ConfigError
    with pytest.raises(ConfigError, match="ema"):
        build_config(None, ["ema=1.5"], data=["x"])
    with pytest.raises(ConfigError, match="init_from"):
        build_config(None, [f"init_from={tmp_path / 'none.keras'}"], data=["x"])


def test_init_from_names_a_run_and_optionally_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    run = tmp_path / "moodstream" / "runs" / "stage2"
    run.mkdir(parents=True)
    for name in ("best.keras", "epoch-31.keras"):
        (run / name).write_bytes(b"checkpoint")
    assert build_config(None, ["init_from=run:stage2"], data=["x"]).init_from == \
        str(run / "best.keras")
    assert build_config(None, ["init_from=run:stage2/epoch-31.keras"], data=["x"]).init_from == \
        str(run / "epoch-31.keras")


def test_learning_rate_schedules():
    stages = build_config(None, ["stages=[[0.001, 2], [0.0001, 1]]"], data=["x"])
    assert [learning_rate_at(stages, e) for e in range(4)] == [0.001, 0.001, 0.0001, 0.0001]
    cosine = build_config(None, ["schedule=cosine", "epochs=10", "warmup_epochs=2", "lr=0.01"],
                          data=["x"])
    assert learning_rate_at(cosine, 0) == pytest.approx(0.005)
    assert learning_rate_at(cosine, 2) == pytest.approx(0.01)
    assert learning_rate_at(cosine, 9) < 0.001


def _augmented_first_batch(seed: int) -> tuple:
    """What the first training step of a run seeded so sees: the batch (order + camera
    corruption) and the augmentation layers' output, built after the seed as train() does."""
    import numpy as np

    from training.models import augmentation_block
    from training.train import TrainBatches
    faces = np.random.default_rng(0).integers(0, 256, (32, 48, 48, 1), dtype=np.uint8)
    targets = np.eye(7, dtype="float32")[np.arange(32) % 7]
    keras.utils.set_random_seed(seed)
    layers = augmentation_block({"flip": True, "rotation": 0.045, "shift": 0.125, "zoom": 0.1})
    x, _ = TrainBatches(faces, targets, 16, 0.0, seed, corruption=0.5)[0]
    out = x
    for layer in layers:
        out = layer(out, training=True)
    return x, keras.ops.convert_to_numpy(out)


def test_a_resumed_run_does_not_replay_the_first_epochs_batches():
    import numpy as np

    from training.train import stream_seed
    assert stream_seed(2026, 0) == 2026  # a fresh run keeps its seed (reproducible as before)
    fresh, again, resumed = (_augmented_first_batch(stream_seed(2026, e)) for e in (0, 0, 12))
    np.testing.assert_array_equal(fresh[0], again[0])
    np.testing.assert_allclose(fresh[1], again[1])
    assert not np.array_equal(fresh[0], resumed[0])  # other faces / corruptions
    assert not np.allclose(fresh[1], resumed[1])  # other flips, rotations, shifts, zooms
