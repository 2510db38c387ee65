"""evaluate's JSON schema and reports; export's artefacts, card and serving fidelity."""

from __future__ import annotations

import json
import zipfile

import h5py

import numpy as np
import pytest

from moodstream.emotions import EMOTIONS
from tests.training.conftest import synthetic_faces, write_csv
from training.__main__ import main
from training.serving import RunnerPredictor, inference_model, load_keras, load_predictor

pytestmark = pytest.mark.slow

PER_CLASS_KEYS = {"precision", "recall", "f1", "accuracy"}


def _check_schema(result: dict, n: int) -> None:
    assert {"accuracy", "n", "per_class", "confusion_matrix", "labels", "tta"} <= set(result)
    assert result["labels"] == list(EMOTIONS) and result["n"] == n
    assert 0.0 <= result["accuracy"] <= 1.0
    assert set(result["per_class"]) == set(EMOTIONS)
    for metrics in result["per_class"].values():
        assert set(metrics) == PER_CLASS_KEYS and all(0.0 <= v <= 1.0 for v in metrics.values())
    matrix = np.asarray(result["confusion_matrix"])
    assert matrix.shape == (7, 7) and matrix.sum() == n
    assert result["accuracy"] == pytest.approx(np.trace(matrix) / n, abs=1e-4)


def test_evaluate_folders_json_schema_and_reports(tiny_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(tiny_run["run"] / "best.keras"), "--data",
                 str(tiny_run["val"]), "--json", str(out), "--tta", "--report-dir",
                 str(tmp_path / "rep")]) == 0
    result = json.loads(out.read_text())
    _check_schema(result, 21)
    assert result["tta"] is True and 0.0 <= result["accuracy_plain"] <= 1.0
    assert f"accuracy {result['accuracy']:.4f} on 21 faces" in capsys.readouterr().out
    for name in ("confusion_matrix.png", "classification_report.txt", "per_class_accuracy.json",
                 "curves.png"):
        assert (tmp_path / "rep" / name).is_file(), name


def test_evaluate_csv_with_usage(tiny_run, tmp_path):
    x, y = synthetic_faces(per_class=2, seed=3)
    usage = ["PrivateTest" if i % 2 else "Training" for i in range(len(y))]
    csv_path = write_csv(tmp_path / "fer2013.csv", x, y, usage)
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(tiny_run["run"] / "best.keras"), "--data", str(csv_path),
                 "--usage", "PrivateTest", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    _check_schema(result, usage.count("PrivateTest"))
    assert result["tta"] is False


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    from training.export import export
    out = tmp_path_factory.mktemp("models")
    card = export(run=str(tiny_run["run"]), out=out, name="emotion", speed_seconds=0.2)
    return out, json.loads(card.read_text())


def test_export_writes_artefacts_and_card(exported):
    out, card = exported
    assert (out / "emotion.keras").is_file() and (out / "emotion.h5").is_file()
    assert not list(out.glob(".export-*"))  # staging directory cleaned up
    assert card["labels"] == list(EMOTIONS)
    assert card["input"] == {"size": 48, "channels": 1, "dtype": "float32", "range": [0, 255],
                             "layout": "NHWC"}
    assert card["serving"]["format"] in ("tflite", "keras")
    assert (out / card["serving"]["path"]).is_file()
    variants = {c["variant"] for c in card["serving"]["candidates"]}
    assert {"xla", "float32", "dynamic_range"} <= variants
    chosen = next(c for c in card["serving"]["candidates"] if c["path"] == card["serving"]["path"])
    best = max(c["accuracy"] for c in card["serving"]["candidates"] if c["variant"] == "xla")
    assert chosen["accuracy"] >= best - 0.005
    assert {"val_accuracy", "val_accuracy_tta", "per_class", "corruptions",
            "corruption_worst_drop_pt"} <= set(card["metrics"])
    assert [r["corruption"] for r in card["metrics"]["corruptions"]][:2] == ["jpeg_q30", "blur_sigma1"]
    assert card["serving"]["runtime"] and card["serving"]["gpu"]["path"] == "emotion.onnx"
    assert (out / "emotion.onnx").is_file()
    assert len(card["training"]["data_fingerprint"]) == 16
    assert card["training"]["config"]["model"] == "moodnet" and card["exported"]["date"]


def test_exported_keras_is_a_float32_inference_model_without_optimizer(exported, tiny_run):
    out, _ = exported
    model = load_keras(out / "emotion.keras")
    with zipfile.ZipFile(out / "emotion.keras") as archive, archive.open("model.weights.h5") as fh:
        assert "optimizer" not in h5py.File(fh, "r")  # no optimizer state shipped
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
    assert not any(type(layer).__name__.startswith("Random") for layer in model.layers)
    # sharp training data: no inference-time blur layer of any kind in the shipped model
    assert not any("blur" in layer.name.lower() or "Blur" in type(layer).__name__
                   for layer in model.layers)
    legacy = load_keras(out / "emotion.h5")
    faces = synthetic_faces(per_class=2, seed=5)[0].astype("float32")
    np.testing.assert_allclose(np.asarray(legacy(faces)), np.asarray(model(faces)), atol=1e-5)


def test_serving_artefact_matches_keras_predictions(exported):
    out, card = exported
    faces = synthetic_faces(per_class=4, seed=7)[0]
    reference = load_predictor(out / "emotion.keras").predict(faces)
    served = load_predictor(out / card["serving"]["path"], card["serving"]["format"])
    probs = served.predict(faces)
    assert probs.shape == reference.shape
    tolerance = 1e-4 if card["serving"]["variant"] in ("xla", "float32") else 0.05
    np.testing.assert_allclose(probs, reference, atol=tolerance)
    # one face at a time gives the same answer as a batch (no batch statistics anywhere)
    np.testing.assert_allclose(served.predict(faces[:1], batch_size=1), probs[:1], atol=1e-5)


def test_onnx_gpu_artefact_matches_keras_predictions(exported):
    out, card = exported
    faces = synthetic_faces(per_class=4, seed=9)[0]
    onnx = load_predictor(out / card["serving"]["gpu"]["path"])
    np.testing.assert_allclose(onnx.predict(faces), load_predictor(out / "emotion.keras").predict(faces),
                               atol=1e-4)


def test_float32_tflite_matches_keras_exactly(exported, tmp_path):
    from training.export import _saved_model, convert_tflite
    out, _ = exported
    model = load_keras(out / "emotion.keras")
    path = convert_tflite(_saved_model(inference_model(model), tmp_path / "sm"), tmp_path / "f.tflite",
                          "float32")
    faces = synthetic_faces(per_class=4, seed=8)[0]
    np.testing.assert_allclose(RunnerPredictor(path).predict(faces),
                               load_predictor(out / "emotion.keras").predict(faces), atol=1e-4)
