"""`analyze --annotate DIR`: copies of the analysed images with each face's box and
dominant emotion drawn, in the emotion's colour (the reports' Okabe-Ito palette).

These copies show faces, so they are written only when asked, only to a local folder,
and nowhere else (docs/PRIVACY.md); nothing in the pipeline keeps pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import cv2
import numpy as np

from moodstream.figures import EMOTION_COLORS
from moodstream.stills import StillError, read_still

NO_FACE_COLOUR = (160, 160, 160)


class AnnotateError(ValueError):
    """The folder cannot take the copies: one line for the user."""


def check_annotate_dir(folder: str | Path) -> Path:
    """Refuse, before any work, a folder that is not local or cannot be written."""
    text = str(folder)
    if "://" in text:
        raise AnnotateError(f"--annotate takes a local folder, not a URL: {text}")
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise AnnotateError(f"--annotate {path} is a file: name a folder")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AnnotateError(f"cannot write annotated images into {path}: permission denied")
    return path


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return b, g, r


def draw_faces(image: np.ndarray, detections: Iterable[Mapping[str, Any]]) -> np.ndarray:
    """A copy of `image` with each detection's box and "emotion NN%" label drawn."""
    out = image.copy()
    scale = max(out.shape[:2]) / 1000.0
    thick = max(1, round(2 * scale))
    for face in detections:
        x, y, w, h = face["box"]
        emotion = face["dominant_emotion"]
        colour = _bgr(EMOTION_COLORS.get(emotion or "", "#999999"))
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thick)
        # No emotion: suppressed (moodstream.suppression), the box alone is drawn.
        label = f"{emotion} {face['emotions'][emotion]:.0%}" if emotion else "suppressed"
        _label(out, label, (x, y), colour, max(0.4, 0.6 * scale), thick)
    return out


def _label(image: np.ndarray, text: str, at: tuple[int, int], colour, size: float,
           thick: int) -> None:
    """Text on a filled band above the box (inside it when the box touches the top)."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, thick)
    x, y = at
    top = y - th - base - 4 if y - th - base - 4 >= 0 else y
    cv2.rectangle(image, (x, top), (x + tw + 4, top + th + base + 4), colour, cv2.FILLED)
    cv2.putText(image, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, size,
                (255, 255, 255), thick, cv2.LINE_AA)


def write_annotated(images: Iterable[Mapping[str, Any]], folder: Path) -> list[Path]:
    """One annotated copy per analysed image, named as the image (-2, -3 ... when two
    share a name); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written, taken = [], set()
    for image in images:
        if not image.get("analysed"):
            continue
        source = Path(image["file"])
        try:
            pixels = read_still(source)
        except StillError:
            continue  # gone or changed since it was analysed: nothing true to draw on
        drawn = draw_faces(pixels, image["detections"])
        if not image["detections"]:
            _label(drawn, "no face found", (0, 0), NO_FACE_COLOUR, 0.6, 1)
        target = _free_name(folder, source, taken)
        if not cv2.imwrite(str(target), drawn):
            raise AnnotateError(f"cannot write {target}")
        written.append(target)
    return written


def _free_name(folder: Path, source: Path, taken: set[str]) -> Path:
    name, n = source.name, 2
    while name in taken:
        name, n = f"{source.stem}-{n}{source.suffix}", n + 1
    taken.add(name)
    return folder / name
