"""Decoded datasets cached as arrays outside the work tree, so 28k JPEGs are decoded once.

The cache lives in `$XDG_CACHE_HOME/moodstream/datasets` (default `~/.cache/...`), keyed
by the folder, the crop size and every file's name, size and mtime: replacing or adding an
image invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """moodstream's per-user cache folder (runs, decoded datasets)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "moodstream"


def _folder_key(root: Path, size: int, channels: int) -> str:
    h = hashlib.sha256(f"{root.resolve()}|{size}|{channels}|v1".encode())
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            h.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def cached(root: Path, size: int, channels: int, reader: Callable):
    """reader(root, size, channels) -> Dataset, memoised on disk; a broken cache is re-read."""
    from training.data import Dataset
    root = Path(root)
    if not root.is_dir():
        return reader(root, size, channels)
    file = cache_root() / "datasets" / f"{_folder_key(root, size, channels)}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                return Dataset(z["x"], z["y"], json.loads(str(z["skipped"])), [str(root)],
                               [str(p) for p in z["paths"]])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable dataset cache %s: %s", file, exc)
    data = reader(root, size, channels)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, x=data.x, y=data.y, skipped=json.dumps(data.skipped),
                 paths=np.asarray(data.paths or [], dtype=str))
        tmp.replace(file)
    except OSError as exc:  # a read-only cache only costs the next run a re-decode
        log.warning("cannot write dataset cache %s: %s", file, exc)
    return data
