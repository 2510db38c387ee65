"""Still images for tests, cut from the shared clips: faces, no face, a crowd, a corrupt file."""

from __future__ import annotations

from pathlib import Path

import cv2

from tests.conftest import VIDEOS, require


def frame_of(clip: str, index: int):
    capture = cv2.VideoCapture(str(require(VIDEOS / clip)))
    try:
        for _ in range(index + 1):
            ok, image = capture.read()
            assert ok, f"{clip} has no frame {index}"
        return image
    finally:
        capture.release()


def make_stills(folder: Path, crowd: bool = False) -> dict[str, Path]:
    """a-smile.jpg, b-smile.png (one face each), c-empty.webp (none), d-broken.jpg (not an
    image), notes.txt (not an image file: ignored); with crowd, e-crowd.jpg (1920x1080)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"a-smile.jpg": frame_of("single_face_smile.mp4", 5),
             "b-smile.png": frame_of("single_face_smile.mp4", 65),
             "c-empty.webp": frame_of("no_face.mp4", 10)}
    if crowd:
        files["e-crowd.jpg"] = frame_of("crowd_walk_1080p.mp4", 60)
    out = {}
    for name, image in files.items():
        assert cv2.imwrite(str(folder / name), image)
        out[name] = folder / name
    (folder / "d-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG at all")
    (folder / "notes.txt").write_text("not an image")
    out["d-broken.jpg"] = folder / "d-broken.jpg"
    return out
