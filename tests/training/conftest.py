"""Tiny synthetic FER datasets, written in the test, so training runs in seconds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from moodstream.emotions import EMOTIONS

PER_CLASS = 6


def synthetic_faces(per_class: int = PER_CLASS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """48x48 grey images whose class is a learnable brightness band plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(len(EMOTIONS)):
        for _ in range(per_class):
            base = 20 + label * 30
            img = np.clip(rng.normal(base, 8, (48, 48)), 0, 255).astype(np.uint8)
            images.append(img)
            labels.append(label)
    return np.stack(images)[..., None], np.asarray(labels, np.int32)


def write_folders(root: Path, x: np.ndarray, y: np.ndarray, names: dict[str, str] | None = None) -> Path:
    """Kaggle layout <root>/<class>/<i>.png (lossless, so a round trip is exact)."""
    names = names or {}
    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / names.get(EMOTIONS[label], EMOTIONS[label])
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:04d}.png"), img[..., 0])
    return root


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, usage: list[str] | None = None,
              header: str = "emotion,pixels,Usage") -> Path:
    usage = usage or ["Training"] * len(y)
    rows = [header]
    for img, label, use in zip(x, y, usage):
        rows.append(f"{label},{' '.join(str(int(v)) for v in img.reshape(-1))},{use}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Decoded-dataset caches and default run dirs go to a temporary XDG cache, not the user's."""
    import os
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


def tiny_splits(root: Path) -> tuple[Path, Path]:
    """Synthetic train and val class folders under root (val: 3 faces a class, another seed)."""
    x, y = synthetic_faces()
    vx, vy = synthetic_faces(per_class=3, seed=1)
    return write_folders(root / "train", x, y), write_folders(root / "val", vx, vy)


@pytest.fixture
def faces():
    return synthetic_faces()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One real 1-epoch training run of a width-0.25 moodnet, shared by the slower tests."""
    from training.config import build_config
    from training.train import train

    root = tmp_path_factory.mktemp("tinyfer")
    train_dir, val_dir = tiny_splits(root)
    cfg = build_config(None, ["width=0.25", "batch_size=16", "jit_compile=false", "schedule=cosine",
                              "epochs=1", "lr=0.001"],
                       data=[str(train_dir)], val=str(val_dir), run_dir=str(root / "run"))
    run = train(cfg)
    return {"run": run, "train": train_dir, "val": val_dir, "root": root}
