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


def predict_views(predictor: Predictor, x: np.ndarray, tta: bool = False,
                  batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax outputs for the faces and, with `tta`, for their mirror images: each predicted once."""
    plain = predictor.predict(x, batch_size=batch_size)
    mirrored = predictor.predict(x[:, :, ::-1, :], batch_size=batch_size) if tta else None
    return plain, mirrored


def evaluate_probs(y: np.ndarray, plain: np.ndarray, mirrored: np.ndarray | None = None) -> dict:
    """Metrics from precomputed outputs; with mirrored outputs, flip TTA plus the plain accuracy."""
    if mirrored is None:
        return {**metrics(y, plain), "tta": False}
    result = metrics(y, (plain + mirrored) / 2.0)
    result["tta"] = True
    result["accuracy_plain"] = metrics(y, plain)["accuracy"]
    return result


def evaluate_arrays(predictor: Predictor, x: np.ndarray, y: np.ndarray, tta: bool = False,
                    batch_size: int = 64) -> dict:
    """Metrics for one predictor on one dataset; with `tta` also the plain accuracy."""
    return evaluate_probs(y, *predict_views(predictor, x, tta, batch_size))


ECE_BINS = 15


def expected_calibration_error(probs: np.ndarray, vote_dist: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of top-1 confidence against the share of annotators who chose the predicted class.

    Faces are put into `bins` equal-width bins by confidence (max probability); each bin
    contributes |mean confidence - mean vote share of the predicted class|, weighted by
    its size. With one-hot "votes" this is the usual accuracy-based ECE.
    """
    if not len(probs):
        return 0.0
    confidence = probs.max(axis=1)
    hit = vote_dist[np.arange(len(probs)), probs.argmax(axis=1)]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(confidence[in_bin].mean() - hit[in_bin].mean())
    return float(total)


def ferplus_metrics(probs: np.ndarray, paths: list[str] | None, votes_csv: str | Path) -> dict:
    """FER+ majority accuracy (images with a clear 7-class majority) and ECE against the votes."""
    from training.ferplus import align, read_votes
    if paths is None:
        raise data_mod.DatasetError("--ferplus needs a class-folder dataset (the CSV names its files)")
    dist, majority = align(paths, read_votes(votes_csv))
    return ferplus_scores(probs, dist, majority)


def ferplus_scores(probs: np.ndarray, dist: np.ndarray, majority: np.ndarray) -> dict:
    """ferplus_metrics on votes already aligned with probs: dist (N, 7) vote shares (all 0:
    no votes), majority (N,) the clear majority's class or -1."""
    clear = majority >= 0
    covered = dist.sum(axis=1) > 0
    accuracy = float((probs[clear].argmax(axis=1) == majority[clear]).mean()) if clear.any() else 0.0
    return {"ferplus": {"accuracy": round(accuracy, 4), "n": int(clear.sum())},
            "ece": round(expected_calibration_error(probs[covered], dist[covered]), 4),
            "ece_n": int(covered.sum()), "ece_bins": ECE_BINS}


def corruption_table(predictor: Predictor, x: np.ndarray, y: np.ndarray, clean_accuracy: float,
                     tta: bool = False, seed: int = 0, batch_size: int = 64) -> list[dict]:
    """Accuracy under each camera corruption alone, and its drop in points from clean."""
    from training.corruptions import CORRUPTIONS, corrupt
    rows = []
    for name in CORRUPTIONS:
        probs = predict_probs(predictor, corrupt(x, name, seed), tta=tta, batch_size=batch_size)
        accuracy = float((probs.argmax(axis=1) == y).mean())
        rows.append({"corruption": name, "accuracy": round(accuracy, 4),
                     "drop_pt": round(100 * (clean_accuracy - accuracy), 2)})
    return rows


def format_corruptions(rows: list[dict], clean_accuracy: float) -> str:
    lines = [f"{'corruption':<18} {'accuracy':>8} {'drop (pt)':>9}",
             f"{'none':<18} {clean_accuracy:>8.4f} {0.0:>9.2f}"]
    lines += [f"{r['corruption']:<18} {r['accuracy']:>8.4f} {r['drop_pt']:>9.2f}" for r in rows]
    return "\n".join(lines)


def evaluate(model: str | Path, data: str | Path, usage: str | None = None, tta: bool = False,
             json_out: str | Path | None = None, report_dir: str | Path | None = None,
             batch_size: int = 64, ferplus: str | Path | None = None,
             corruptions: bool = False) -> dict:
    """Evaluate a model file on a dataset; optionally write the JSON and the report files."""
    predictor = load_predictor(model)
    size, channels = predictor.input_shape[0], predictor.input_shape[2]
    dataset = data_mod.read_dataset(data, usage, size, channels)
    plain, mirrored = predict_views(predictor, dataset.x, tta, batch_size)
    result = evaluate_probs(dataset.y, plain, mirrored)
    result.update(model=str(model), data=str(data), usage=usage, skipped=dataset.skipped,
                  data_fingerprint=dataset.fingerprint())
    if ferplus:
        probs = plain if mirrored is None else (plain + mirrored) / 2.0
        result.update(ferplus_metrics(probs, dataset.paths, ferplus))
    if corruptions:
        result["corruptions"] = corruption_table(predictor, dataset.x, dataset.y, result["accuracy"],
                                                 tta=tta, batch_size=batch_size)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2))
    if report_dir:
        from training.reports import write_reports
        history = Path(model).parent / "history.csv"
        write_reports(report_dir, result, history if history.is_file() else None,
                      title=f"{Path(model).name} on {Path(data).name}")
    return result
