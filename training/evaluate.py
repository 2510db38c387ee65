"""`python -m training evaluate`: accuracy, per-class metrics and confusion matrix of a model.

Works on any artefact `serving.load_predictor` opens (.keras/.h5, .tflite, SavedModel)
and on any dataset `data.read_dataset` reads (class folders with FER names or
aliases, fer2013.csv with a Usage filter).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from moodstream.emotions import EMOTIONS
from training import data as data_mod
from training.serving import Predictor, load_predictor

log = logging.getLogger(__name__)


def predict_probs(predictor: Predictor, x: np.ndarray, tta: bool = False,
                  batch_size: int = 64) -> np.ndarray:
    """Softmax outputs; with `tta`, the mean over the face and its mirror image."""
    probs = predictor.predict(x, batch_size=batch_size)
    if tta:
        probs = (probs + predictor.predict(x[:, :, ::-1, :], batch_size=batch_size)) / 2.0
    return probs


def metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """The evaluate JSON body: accuracy, n, per_class, confusion_matrix, labels."""
    classes = list(range(len(EMOTIONS)))
    y_pred = probs.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, labels=classes)
    per_class = {
        label: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                # per-class accuracy as the FER papers report it: share of that class found
                "accuracy": round(float(recall[i]), 4)}
        for i, label in enumerate(EMOTIONS)
    }
    return {"accuracy": round(float((y_pred == y_true).mean()), 4) if len(y_true) else 0.0,
            "n": int(len(y_true)), "per_class": per_class,
            "confusion_matrix": matrix.astype(int).tolist(), "labels": list(EMOTIONS)}


def evaluate_arrays(predictor: Predictor, x: np.ndarray, y: np.ndarray, tta: bool = False,
                    batch_size: int = 64) -> dict:
    """Metrics for one predictor on one dataset; with `tta` also the plain accuracy."""
    plain = predictor.predict(x, batch_size=batch_size)
    if not tta:
        return {**metrics(y, plain), "tta": False}
    mirrored = predictor.predict(x[:, :, ::-1, :], batch_size=batch_size)
    result = metrics(y, (plain + mirrored) / 2.0)
    result["tta"] = True
    result["accuracy_plain"] = metrics(y, plain)["accuracy"]
    return result


def evaluate(model: str | Path, data: str | Path, usage: str | None = None, tta: bool = False,
             json_out: str | Path | None = None, report_dir: str | Path | None = None,
             batch_size: int = 64) -> dict:
    """Evaluate a model file on a dataset; optionally write the JSON and the report files."""
    predictor = load_predictor(model)
    size, channels = predictor.input_shape[0], predictor.input_shape[2]
    dataset = data_mod.read_dataset(data, usage, size, channels)
    result = evaluate_arrays(predictor, dataset.x, dataset.y, tta=tta, batch_size=batch_size)
    result.update(model=str(model), data=str(data), usage=usage, skipped=dataset.skipped,
                  data_fingerprint=dataset.fingerprint())
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2))
    if report_dir:
        from training.reports import write_reports
        history = Path(model).parent / "history.csv"
        write_reports(report_dir, result, history if history.is_file() else None,
                      title=f"{Path(model).name} on {Path(data).name}")
    return result
