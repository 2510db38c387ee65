"""Dataset readers: FER2013 class folders, the original fer2013.csv, CK+-style folders.

Every reader returns a Dataset of uint8 images (N, H, W, C) and integer labels in
moodstream.emotions.EMOTIONS order. Unreadable images are skipped and counted,
never fatal; structural problems (missing directory, wrong CSV columns, an empty
class) raise DatasetError with one clear message.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from moodstream.emotions import EMOTIONS
from moodstream.faceprep import prepare_image

log = logging.getLogger(__name__)

# CK+ and other corpora spell some classes differently.
LABEL_ALIASES = {
    "anger": "angry", "angry": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear",
    "happy": "happy", "happiness": "happy",
    "neutral": "neutral",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
FER_PIXELS = 48 * 48
CSV_USAGE_ALIASES = {"train": "Training", "training": "Training", "val": "PublicTest",
                     "publictest": "PublicTest", "test": "PrivateTest", "privatetest": "PrivateTest"}


class DatasetError(ValueError):
    """A dataset that cannot be used at all; the message says why."""


@dataclass
class Dataset:
    x: np.ndarray  # uint8, (N, H, W, C)
    y: np.ndarray  # int32, (N,)
    skipped: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    paths: list[str] | None = None  # per image, relative to its folder (folder readers only)

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(EMOTIONS))
        return {e: int(c) for e, c in zip(EMOTIONS, counts)}

    def fingerprint(self) -> str:
        """Content hash of pixels and labels: identifies exactly what a model saw."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.x).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()[:16]


def canonical_label(name: str) -> str | None:
    return LABEL_ALIASES.get(name.strip().lower())


def _read_image(path: Path, size: int, channels: int) -> np.ndarray | None:
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag)
    if img is None or img.size == 0:
        return None
    return prepare_image(img, size, channels)


def read_folders(root: str | Path, size: int = 48, channels: int = 1) -> Dataset:
    """Read `<root>/<class>/*.jpg` (FER2013 Kaggle layout, or CK+ with aliases)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset directory not found: {root}")
    images, labels, paths, skipped = [], [], [], {"unknown_class": 0, "corrupt_image": 0}
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise DatasetError(f"no class folders in {root} (expected <root>/<class>/*.jpg)")
    for class_dir in class_dirs:
        label = canonical_label(class_dir.name)
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if label is None:
            log.warning("skipping class folder %r: not one of the 7 emotions", class_dir.name)
            skipped["unknown_class"] += len(files)
            continue
        if not files:
            raise DatasetError(f"class folder {class_dir} has no images")
        index = EMOTIONS.index(label)
        for path in files:
            img = _read_image(path, size, channels)
            if img is None:
                skipped["corrupt_image"] += 1
                log.warning("skipping unreadable image %s", path)
                continue
            images.append(img)
            labels.append(index)
            paths.append(f"{class_dir.name}/{path.name}")
    if not images:
        raise DatasetError(f"no readable images under {root}")
    return Dataset(np.stack(images), np.asarray(labels, np.int32), skipped, [str(root)], paths)


def read_fer_csv(path: str | Path, usage: str | None = None, size: int = 48,
                 channels: int = 1) -> Dataset:
    """Read the original fer2013.csv (emotion, pixels, Usage); optionally one Usage split."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"CSV file not found: {path}")
    want = CSV_USAGE_ALIASES.get(usage.lower(), usage) if usage else None
    images, labels = [], []
    skipped = {"bad_row": 0}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{path}: missing CSV column(s) {sorted(missing)}; "
                               "expected emotion, pixels[, Usage]")
        for line, row in enumerate(reader, start=2):
            if want and row.get("Usage") != want:
                continue
            values = row["pixels"].split()
            if len(values) != FER_PIXELS:
                raise DatasetError(f"{path}:{line}: {len(values)} pixels, expected {FER_PIXELS}")
            try:
                label = int(row["emotion"])
                img = np.asarray(values, dtype=np.uint8).reshape(48, 48)
            except ValueError:
                skipped["bad_row"] += 1
                continue
            # fer2013.csv numbers classes 0..6 in this same alphabetical order.
            if not 0 <= label < len(EMOTIONS):
                skipped["bad_row"] += 1
                continue
            images.append(prepare_image(img, size, channels))
            labels.append(label)
    if not images:
        raise DatasetError(f"{path}: no rows" + (f" with Usage={want}" if want else ""))
    return Dataset(np.stack(images), np.asarray(labels, np.int32), skipped, [f"{path}:{want or 'all'}"])


def read_dataset(source: str | Path, usage: str | None = None, size: int = 48,
                 channels: int = 1) -> Dataset:
    """Read a class-folder tree or a fer2013.csv, by what `source` is."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        return read_fer_csv(source, usage, size, channels)
    if usage and (source / usage).is_dir():
        source = source / usage
    from training.cache import cached
    return cached(source, size, channels, read_folders)


def merge(datasets: list[Dataset]) -> Dataset:
    if len(datasets) == 1:
        return datasets[0]
    skipped: dict[str, int] = {}
    for d in datasets:
        for k, v in d.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    # Paths are relative to each source folder, so they only stay meaningful for one source.
    return Dataset(np.concatenate([d.x for d in datasets]), np.concatenate([d.y for d in datasets]),
                   skipped, [s for d in datasets for s in d.sources])


def subset(data: Dataset, idx: np.ndarray) -> Dataset:
    paths = None if data.paths is None else [data.paths[i] for i in idx]
    return Dataset(data.x[idx], data.y[idx], data.skipped, data.sources, paths)


def stratified_split(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out `fraction` of every class, deterministically."""
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(data.y):
        idx = np.flatnonzero(data.y == cls)
        rng.shuffle(idx)
        held.append(idx[: max(1, int(round(len(idx) * fraction)))])
    mask = np.zeros(len(data), bool)
    mask[np.concatenate(held)] = True
    return subset(data, np.flatnonzero(~mask)), subset(data, np.flatnonzero(mask))


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights, normalised so the mean weight is 1."""
    counts = np.bincount(y, minlength=len(EMOTIONS)).astype(float)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def resample(data: Dataset, mode: str, seed: int) -> Dataset:
    """Balance classes by 'oversample' (repeat minority) or 'undersample' (trim majority)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(data.y, minlength=len(EMOTIONS))
    target = counts[counts > 0].max() if mode == "oversample" else counts[counts > 0].min()
    picks = []
    for cls in np.flatnonzero(counts):
        idx = np.flatnonzero(data.y == cls)
        picks.append(rng.choice(idx, size=target, replace=len(idx) < target))
    return subset(data, rng.permutation(np.concatenate(picks)))
