"""Render the demo camera clips in demo/clips/ from FER2013 validation faces.

Each clip is a synthetic "camera" (640x360, 10 fps, 40 s) in which a few customers'
faces (real FER2013 PublicTest faces, upscaled to ~160 px) change expression over time
with one-second cross-fades, so the demo shows real detection and real classification
with a sentiment that moves. The scripts are deterministic (fixed seed). Only faces that
the YuNet detector finds on their own are used.

    .venv/bin/python scripts/make_demo_clips.py --fer ../shared/datasets/fer2013/val
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yuface

W, H, FPS = 640, 360, 10
FACE = 160
HOLD_S, FADE_S = 4, 1


@dataclass(frozen=True)
class Camera:
    name: str
    slots: tuple[tuple[int, int], ...]  # top-left corner of each face slot
    script: tuple[tuple[str, ...], ...]  # per slot: the sequence of expressions
    tint: tuple[int, int, int]  # BGR background colour, so the cameras look different


CAMERAS = (
    Camera("store-entrance", ((60, 110), (420, 90)),
           (("neutral", "happy", "happy", "surprise", "happy", "neutral", "happy", "happy"),
            ("happy", "neutral", "surprise", "happy", "happy", "neutral", "neutral", "happy")),
           (70, 90, 110)),
    Camera("checkout-2", ((240, 100),),
           (("neutral", "sad", "angry", "angry", "neutral", "sad", "fear", "neutral"),),
           (110, 90, 70)),
)


def detectable_faces(fer_val: Path, label: str, rng: random.Random, n: int) -> list[np.ndarray]:
    files = sorted((fer_val / label).glob("*.jpg"))
    rng.shuffle(files)
    faces = []
    for path in files:
        face = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (FACE, FACE),
                          interpolation=cv2.INTER_CUBIC)
        canvas = np.full((H, W), 128, np.uint8)
        canvas[100:100 + FACE, 240:240 + FACE] = face
        confs, _, _ = yuface.detect(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), conf=0.6)
        if len(confs):
            faces.append(face)
        if len(faces) == n:
            break
    return faces


def background(tint: tuple[int, int, int]) -> np.ndarray:
    ramp = np.linspace(0.6, 1.0, W, dtype=np.float32)[None, :, None]
    bg = np.ones((H, W, 3), np.float32) * np.array(tint, np.float32) * ramp
    cv2.rectangle(bg, (0, H - 40), (W, H), (60, 60, 60), -1)  # a counter along the bottom
    return bg.astype(np.uint8)


def render(camera: Camera, pool: dict[str, list[np.ndarray]], out: Path, rng: random.Random) -> None:
    steps = len(camera.script[0])
    per_step = (HOLD_S + FADE_S) * FPS
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {out}")
    faces = [[rng.choice(pool[label]) for label in slot] for slot in camera.script]
    bg = background(camera.tint)
    for step in range(steps):
        for i in range(per_step):
            alpha = max(0.0, (i - HOLD_S * FPS) / (FADE_S * FPS))  # cross-fade at the end
            frame = bg.copy()
            for slot, (x, y) in enumerate(camera.slots):
                now = faces[slot][step].astype(np.float32)
                nxt = faces[slot][(step + 1) % steps].astype(np.float32)
                face = ((1 - alpha) * now + alpha * nxt).astype(np.uint8)
                frame[y:y + FACE, x:x + FACE] = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
            writer.write(frame)
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer", type=Path, default=Path("../shared/datasets/fer2013/val"))
    parser.add_argument("--out", type=Path, default=Path("demo/clips"))
    args = parser.parse_args()
    rng = random.Random(2013)
    labels = {label for cam in CAMERAS for slot in cam.script for label in slot}
    pool = {label: detectable_faces(args.fer, label, rng, 6) for label in sorted(labels)}
    args.out.mkdir(parents=True, exist_ok=True)
    for camera in CAMERAS:
        path = args.out / f"{camera.name}.mp4"
        render(camera, pool, path, rng)
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
