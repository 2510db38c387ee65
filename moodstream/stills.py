"""Still images as a source: which files count, in which order, and how one is read.

Ingest publishes each image of a still source (one image, or a folder of them) as one
frame, and `moodstream analyze` lists and checks the same images the same way, so the
frame of image i is the one at session time i s (each image is its own second bucket).
Only the folder's own files count (no subfolders, no hidden files), in name order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STILL_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# A photo is a few MB; past this a file is not one (and decoding it could exhaust memory).
MAX_STILL_BYTES = 64 * 1024 * 1024
# Each image is published at this many seconds of session time after the previous one,
# so every image is its own per-second bucket and report timeline entry.
STILL_SPACING_S = 1.0


class StillError(ValueError):
    """An image that cannot be used; str() is the one-line reason."""


def is_still_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in STILL_SUFFIXES


def is_still_source(url: str) -> bool:
    """An image file or a folder (of images): never a URL or a webcam index."""
    if url.isdigit() or "://" in url:
        return False
    return is_still_file(url) or Path(url).is_dir()


def list_stills(folder: str | Path) -> list[Path]:
    """The folder's image files, in name order."""
    folder = Path(folder)
    return sorted((p for p in folder.iterdir()
                   if is_still_file(p) and not p.name.startswith(".") and p.is_file()),
                  key=lambda p: p.name)


def still_paths(url: str | Path) -> list[Path]:
    """The images of a still source: the file itself, or the folder's images."""
    path = Path(url)
    return list_stills(path) if path.is_dir() else [path]


def read_still(path: str | Path) -> np.ndarray:
    """The image as BGR pixels (EXIF orientation applied); StillError says why not."""
    import cv2
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_STILL_BYTES:
            raise StillError(f"{size} bytes is over the {MAX_STILL_BYTES >> 20} MiB limit")
        data = path.read_bytes()
    except OSError as exc:
        raise StillError(f"cannot read it: {exc.strerror or exc}") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None or image.size == 0:
        raise StillError("not a decodable image (corrupt, or not JPEG, PNG or WebP)")
    return image
