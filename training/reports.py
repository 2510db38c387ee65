"""Run reports: confusion-matrix heatmap, learning curves, classification report, per-class accuracy.

Matplotlib with the Agg backend only, so reports render on a headless training box.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from moodstream.emotions import EMOTIONS

log = logging.getLogger(__name__)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # headless: never try to open a window
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    """Row-normalised heatmap (recall per true class), with raw counts in each cell."""
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, f"{share[i, j]:.2f}\n{int(counts[i, j])}", ha="center", va="center",
                    fontsize=7, color=colour)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def read_history(history_csv: Path) -> dict[str, list[float]]:
    """CSVLogger output as columns; a resumed run appends, so later epochs win."""
    by_epoch: dict[int, dict[str, float]] = {}
    with Path(history_csv).open(newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                by_epoch[int(row["epoch"])] = {k: float(v) for k, v in row.items() if k != "epoch" and v}
            except (KeyError, ValueError):
                continue
    epochs = sorted(by_epoch)
    keys = sorted({k for row in by_epoch.values() for k in row})
    columns = {k: [by_epoch[e].get(k, float("nan")) for e in epochs] for k in keys}
    columns["epoch"] = [float(e + 1) for e in epochs]
    return columns


def plot_curves(history_csv: Path, path: Path) -> Path | None:
    """Accuracy and loss per epoch, train vs validation, from history.csv."""
    history = read_history(history_csv)
    if not history["epoch"]:
        log.warning("no epochs in %s; skipping learning curves", history_csv)
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history:
                ax.plot(history["epoch"], history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if "val_accuracy" in history:
        best = int(np.nanargmax(history["val_accuracy"]))
        axes[0].set_title(f"best val_accuracy {history['val_accuracy'][best]:.4f} "
                          f"at epoch {int(history['epoch'][best])}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def classification_report_text(result: dict) -> str:
    """The evaluate result as a fixed-width table, like sklearn's classification_report."""
    lines = [f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'accuracy':>10}{'support':>10}"]
    supports = [sum(row) for row in result["confusion_matrix"]]
    for label, support in zip(result["labels"], supports):
        m = result["per_class"][label]
        lines.append(f"{label:<10}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}"
                     f"{m['accuracy']:>10.4f}{support:>10d}")
    lines.append("")
    lines.append(f"{'accuracy':<10}{result['accuracy']:>40.4f}{result['n']:>10d}")
    macro = np.mean([result["per_class"][label]["f1"] for label in result["labels"]])
    lines.append(f"{'macro f1':<10}{macro:>40.4f}")
    return "\n".join(lines) + "\n"


def plot_per_class(result: dict, path: Path) -> Path:
    plt = _pyplot()
    labels = result["labels"]
    values = [result["per_class"][label]["accuracy"] for label in labels]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(labels, values, color="#4c72b0")
    ax.axhline(result["accuracy"], color="black", linestyle="--", linewidth=1, label="overall")
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (recall)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(out_dir: str | Path, result: dict, history_csv: str | Path | None = None,
                  title: str = "validation") -> list[Path]:
    """Write every report for one evaluation (and the run's curves) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(result.get("labels", EMOTIONS))
    written = [plot_confusion(result["confusion_matrix"], labels, out / "confusion_matrix.png",
                              f"{title}: accuracy {result['accuracy']:.4f} (n={result['n']})")]
    report = out / "classification_report.txt"
    report.write_text(classification_report_text(result))
    per_class = out / "per_class_accuracy.json"
    per_class.write_text(json.dumps({label: result["per_class"][label]["accuracy"] for label in labels},
                                    indent=2))
    written += [report, per_class, plot_per_class(result, out / "per_class_accuracy.png")]
    if history_csv and Path(history_csv).is_file():
        curves = plot_curves(Path(history_csv), out / "curves.png")
        if curves:
            written.append(curves)
    return written
