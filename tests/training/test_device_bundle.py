"""The GPU hand-off: bundle pack/load, weight chunks, the wall-clock budget, device_train end to end."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from moodstream.emotions import EMOTIONS
from tests.training.conftest import synthetic_faces, tiny_splits
from training import device_bundle
from training.config import build_config
from training.device_train import WallClockBudget
from training.ferplus import VOTE_COLUMNS
from training.__main__ import main as training_cli
from training.models import ModelSpec, build_model

HEADER = "path," + ",".join(VOTE_COLUMNS) + ",fer_row,match_err"


def _votes_csv(path: Path, folder: Path, seed: int) -> Path:
    """FER+ votes for every image of a class folder tree; one image gets an NF majority."""
    rng = np.random.default_rng(seed)
    rows = [HEADER]
    for i, image in enumerate(sorted(folder.rglob("*.png"))):
        counts = rng.multinomial(10, [0.3, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.1, 0.0, 0.0])
        if i == 0:
            counts = np.zeros(10, int)
            counts[-1] = 10  # NF: dropped from training
        rows.append(",".join([image.relative_to(folder).as_posix(), *map(str, counts), "1", "0.5"]))
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle-data")
    train_dir, val_dir = tiny_splits(root)
    config = root / "gpu.toml"
    config.write_text(f'data = ["{train_dir}"]\nval = "{val_dir}"\nlabel_mode = "mix"\n'
                      f'ferplus_train = "{_votes_csv(root / "ft.csv", train_dir, 0)}"\n'
                      f'ferplus_val = "{_votes_csv(root / "fv.csv", val_dir, 1)}"\nwidth = 0.25\n'
                      'batch_size = 8\njit_compile = false\nschedule = "cosine"\nepochs = 3\n')
    assert training_cli(["pack-device", "--config", str(config), "--out", str(root / "bundle"),
                         "--set", f"run_dir={root / 'run'}"]) == 0
    return {"cfg": build_config(str(config), []), "bundle": root / "bundle", "root": root}


def test_pack_then_load_gives_train_s_own_targets(tiny_bundle):
    from training.train import load_splits, training_targets
    arrays, manifest = device_bundle.load(tiny_bundle["bundle"])
    train_set, val_set = load_splits(tiny_bundle["cfg"])
    targets = training_targets(tiny_bundle["cfg"], train_set)
    assert len(targets.keep) == len(train_set) - 1  # the NF face is dropped
    np.testing.assert_array_equal(arrays["train_x"], train_set.x[targets.keep])
    np.testing.assert_array_equal(arrays["train_y"], targets.y)
    np.testing.assert_array_equal(arrays["val_x"], val_set.x)
    np.testing.assert_array_equal(arrays["val_y"], val_set.y)
    assert arrays["train_x"].dtype == np.uint8 and arrays["val_votes"].shape == (len(val_set), len(EMOTIONS))
    assert (arrays["val_majority"] == -1).sum() >= 1  # the NF face has no clear majority
    np.testing.assert_allclose(arrays["val_votes"][arrays["val_majority"] >= 0].sum(axis=1), 1.0, atol=1e-6)
    assert manifest["train_fingerprint"] == train_set.fingerprint()
    assert manifest["targets"]["kept"] == len(targets.keep)
    assert manifest["config"]["label_mode"] == "mix"
    on_disk = sum((tiny_bundle["bundle"] / f["file"]).stat().st_size for f in manifest["files"].values())
    assert manifest["total_bytes"] == on_disk


def test_a_changed_bundle_file_is_one_clear_error(tiny_bundle, tmp_path):
    import shutil
    copy = shutil.copytree(tiny_bundle["bundle"], tmp_path / "b")
    target = copy / "train_y.npy.xz"
    target.write_bytes(target.read_bytes()[:-5])
    with pytest.raises(device_bundle.BundleError, match="SHA-256 differs"):
        device_bundle.load(copy)
    with pytest.raises(device_bundle.BundleError, match="no readable manifest.json"):
        device_bundle.load(tmp_path / "nowhere")


def _small_model():
    spec = {"model": "moodnet", "input_size": 48, "channels": 1, "augment": {"flip": True},
            "weights": "none", "width": 0.25, "dropout": 0.3}
    model = device_bundle.build_from_spec(spec)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") + (1.0 if "variance" in v.path else 0.0)
                       for w, v in zip(model.get_weights(), model.weights)])
    return model, spec


def test_weight_chunks_round_trip_to_a_keras_file(tmp_path):
    model, spec = _small_model()
    files = device_bundle.save_weight_chunks(model, tmp_path / "w", spec, chunk_bytes=64 * 1024)
    index = json.loads((tmp_path / "w" / "weights.json").read_text())
    assert index["dtype"] == "float32" and len(index["chunks"]) > 2
    assert all(p.stat().st_size <= 64 * 1024 for p in files if p.suffix == ".bin")
    assert training_cli(["keras-from-device", "--weights", str(tmp_path / "w"), "--out",
                         str(tmp_path / "m.keras")]) == 0
    rebuilt = keras.saving.load_model(tmp_path / "m.keras")
    faces = synthetic_faces(per_class=2)[0].astype("float32")
    np.testing.assert_array_equal(rebuilt.predict(faces, verbose=0), model.predict(faces, verbose=0))


def test_float16_chunks_are_close_and_a_missing_chunk_is_an_error(tmp_path):
    model, spec = _small_model()
    device_bundle.save_weight_chunks(model, tmp_path / "w", spec, dtype="float16", chunk_bytes=64 * 1024)
    values, index = device_bundle.read_weight_chunks(tmp_path / "w")
    assert index["dtype"] == "float16"
    for variable in model.weights:
        np.testing.assert_allclose(values[variable.path], variable.numpy(), rtol=1e-3, atol=1e-4)
    (tmp_path / "w" / "weights.001.bin").unlink()
    with pytest.raises(device_bundle.BundleError, match="cannot read"):
        device_bundle.read_weight_chunks(tmp_path / "w")
    assert training_cli(["keras-from-device", "--weights", str(tmp_path / "w"), "--out",
                         str(tmp_path / "m.keras")]) == 2


class FakeClock:
    def __init__(self, step_s: float):
        self.now, self.step_s = 0.0, step_s

    def __call__(self):
        self.now += self.step_s
        return self.now


def _fit_with_budget(budget: WallClockBudget, epochs: int) -> keras.callbacks.History:
    model = build_model("moodnet", ModelSpec(width=0.25))
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
    x, y = synthetic_faces(per_class=4)
    return model.fit(x.astype("float32"), keras.utils.to_categorical(y, 7), batch_size=4, epochs=epochs,
                     validation_data=(x[:8].astype("float32"), keras.utils.to_categorical(y[:8], 7)),
                     callbacks=[budget], verbose=0)


def test_budget_stops_at_max_steps_mid_epoch_and_still_validates():
    cfg = build_config(None, ["schedule=cosine", "epochs=5"], data=["unused"])
    budget = WallClockBudget(cfg, seconds=1e9, max_steps=9)  # 7 steps an epoch
    history = _fit_with_budget(budget, cfg.epochs)
    assert budget.stopped_by == "max_steps" and budget.steps == 9
    assert budget.epochs_done == 2 and len(history.history["val_loss"]) == 2
    assert budget.step_seconds() > 0


def test_budget_stops_at_the_deadline_and_fits_the_cosine_into_it():
    cfg = build_config(None, ["schedule=cosine", "epochs=50"], data=["unused"])
    clock = FakeClock(step_s=1.0)  # every clock read is one second later
    budget = WallClockBudget(cfg, seconds=60, clock=clock)
    _fit_with_budget(budget, cfg.epochs)
    assert budget.stopped_by in ("budget", "epochs")
    assert 2 <= budget.epochs_done < 50
    assert budget.epochs_done <= cfg.epochs < 50  # the cosine was shortened to what fits
    assert clock.now <= 60 + 3 * 8  # at most the epoch under way ran past the deadline


@pytest.mark.slow
def test_device_train_end_to_end_writes_what_comes_back(tiny_bundle, tmp_path):
    from training import device_train
    out = tmp_path / "out"
    code = device_train.main(["--bundle", str(tiny_bundle["bundle"]), "--out", str(out), "--minutes", "1",
                              "--max-steps", "4", "--workers", "1", "--run-dir", str(tmp_path / "run")])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["history.csv", "metrics.json", "weights.000.bin", "weights.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stopped_by"] == "max_steps" and metrics["steps"] == 4
    assert {"accuracy", "accuracy_plain", "ferplus", "ece", "ece_tta", "corruptions"} <= set(metrics)
    assert len(metrics["corruptions"]) == 7 and metrics["ferplus"]["n"] > 0
    assert metrics["config"]["width"] == 0.25 and metrics["machine"]["backend"] == keras.backend.backend()
    rebuilt = device_bundle.keras_from_chunks(out, tmp_path / "m.keras")
    from training.evaluate import evaluate
    result = evaluate(rebuilt, tiny_bundle["root"] / "val")
    assert result["accuracy"] == pytest.approx(metrics["accuracy_plain"], abs=1e-4)


def test_device_train_reports_a_missing_bundle_in_one_line(tmp_path, capsys):
    from training import device_train
    assert device_train.main(["--bundle", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: no readable manifest.json")
