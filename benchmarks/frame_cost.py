"""Per-frame CPU cost of each stage, one thread: the floor under what 2 cores can sustain.

    .venv/bin/python -m benchmarks.frame_cost [--clip PATH ...] [--frames 120]

For every clip (default: the generated 720p crowd clip of benchmarks.e2e_bench and the
shared single_face_smile), each stage is timed with time.process_time() (CPU seconds of
this process, the video decoder's and the model runtime's own threads included; the
stages run one at a time, so each reading is that stage's alone; a busy machine inflates
CPU time far less than wall time) over the first --frames frames:

  ingest:   video decode (cv2.VideoCapture.read), resize to 1280 wide, JPEG encode (q85)
            (a sampled live camera also grabs, without converting, each frame it skips)
  detector: JPEG decode, face detection at the adaptive width (the service's default) and
            at the full detection width (640), face crops, the emotion model per face
            (one batched call per frame's faces, as a 64-crop batch costs per face)

floor (ms) = JPEG decode + detect (adaptive) + crops + classify, the per-frame work of the
detector alone; with ingest's read + encode it is the whole pipeline's per-frame CPU.
2 cores / floor is the most frames per second the machine could analyse if nothing else
(broker, aggregator, Redis, Python glue) cost anything. Prints a table; writes
benchmarks/out/frame_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.e2e_bench import BASELINE_DETECTOR, OUT, generated_clip, shared_dir

STAGES = ("read", "resize", "encode", "decode", "detect", "detect_full", "crops", "classify")


def _cpu_ms(fn, *args):
    start = time.process_time()
    result = fn(*args)
    return result, (time.process_time() - start) * 1000.0


def measure(clip: Path, frames: int) -> dict:
    """Per-stage CPU ms per frame (median and mean) and faces per frame, for one clip."""
    import cv2
    from detector.__main__ import build_pipeline, check_config
    from detector.settings import DetectorSettings
    from ingest.camera import encode_jpeg
    from moodstream.schemas import FrameHeaders
    settings = DetectorSettings.load(kafka_bootstrap_servers="unused:9092", decode_threads=0,
                                     **BASELINE_DETECTOR)
    pipeline = build_pipeline(settings, *check_config(settings))
    capture = cv2.VideoCapture(str(clip))
    costs = {stage: [] for stage in STAGES}
    faces = []
    for seq in range(frames):
        (ok, image), read_ms = _cpu_ms(capture.read)
        if not ok:
            break
        costs["read"].append(read_ms)
        height, width = image.shape[:2]
        if width > 1280:
            size = (1280, max(1, round(height * 1280 / width)))
            image, ms = _cpu_ms(cv2.resize, image, size, None, 0, 0, cv2.INTER_LINEAR)
            costs["resize"].append(ms)
        (jpeg, _w, _h), ms = _cpu_ms(encode_jpeg, image, 1280, 85)
        costs["encode"].append(ms)
        headers = FrameHeaders("cost", "cost", seq, time.time(), float(seq))
        decoded, ms = _cpu_ms(pipeline.decode, jpeg, headers)
        costs["decode"].append(ms)
        width_now = pipeline.detection_width(headers, decoded.shape[1])
        boxes, ms = _cpu_ms(pipeline.detect, decoded, width_now)
        costs["detect"].append(ms)
        _full, ms = _cpu_ms(pipeline.detect, decoded, None)
        costs["detect_full"].append(ms)
        kept, _tracks = pipeline.settle(decoded, headers, boxes)
        crops, ms = _cpu_ms(pipeline.crops, decoded, kept)
        costs["crops"].append(ms)
        if len(crops):
            _probs, ms = _cpu_ms(pipeline.model.predict, crops)
        else:
            ms = 0.0
        costs["classify"].append(ms)
        faces.append(len(kept))
    capture.release()
    pipeline.close()
    stages = {stage: {"median_ms": round(statistics.median(v), 2), "mean_ms": round(statistics.fmean(v), 2)}
              for stage, v in costs.items() if v}
    mean = {stage: s["mean_ms"] for stage, s in stages.items()}
    floor = sum(mean.get(s, 0.0) for s in ("decode", "detect", "crops", "classify"))
    ingest = sum(mean.get(s, 0.0) for s in ("read", "resize", "encode"))
    return {"clip": clip.name, "frames": len(faces), "faces_per_frame": round(statistics.fmean(faces), 2),
            "stages": stages, "detector_floor_ms": round(floor, 2), "ingest_ms": round(ingest, 2),
            "pipeline_floor_ms": round(floor + ingest, 2),
            "max_fps_2_cores": round(2000.0 / (floor + ingest), 1)}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.frame_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--clip", nargs="+", type=Path, help="video files (default: generated 720p, single_face_smile)")
    parser.add_argument("--frames", type=int, default=120, help="frames per clip (120)")
    args = parser.parse_args(argv)
    clips = args.clip or [generated_clip(frames=450), shared_dir() / "videos" / "single_face_smile.mp4"]
    missing = [str(c) for c in clips if not Path(c).is_file()]
    if missing:
        print(f"frame_cost: no such clip: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = [measure(Path(c), args.frames) for c in clips]
    print(f"{'clip':<48} {'stage':<12} {'median ms':>9} {'mean ms':>8}")
    for r in results:
        for stage, s in r["stages"].items():
            print(f"{r['clip']:<48} {stage:<12} {s['median_ms']:>9.2f} {s['mean_ms']:>8.2f}")
        print(f"{r['clip']:<48} faces/frame {r['faces_per_frame']}, detector floor {r['detector_floor_ms']} ms, "
              f"with ingest {r['pipeline_floor_ms']} ms -> at most {r['max_fps_2_cores']} frames/s on 2 cores")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "frame_cost.json").write_text(json.dumps({"load_avg": os.getloadavg(), "clips": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
