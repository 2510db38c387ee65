"""Ingest throughput: frames/s read + JPEG-encoded + published to a real broker, against
plain OpenCV decode of the same file (the upper bound: ingest cannot beat its own decoder).

    .venv/bin/python -m benchmarks.ingest_bench [--repeats N]

Runs the real IngestService (fast mode, every frame) on an embedded Tansu broker, each
clip `--repeats` times, and times from start until every frame is acknowledged and the
session_end is published. Prints a table and writes benchmarks/out/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from statistics import median

import cv2

from ingest.config import CameraConfig, IngestSettings, PacingMode
from ingest.publisher import make_producer
from ingest.service import IngestService
from moodstream.clients import ensure_topics, kafka_producer
from moodstream.embedded import EmbeddedKafka

REPO = Path(__file__).resolve().parents[1]
VIDEOS = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared")) / "videos"
OUT = REPO / "benchmarks" / "out" / "ingest.json"
CASES = [  # (clip, max_width): the ingest default downscales 1080p to 1280 wide
    ("crowd_walk_1080p.mp4", 1280),
    ("crowd_walk_1080p.mp4", 1920),
    ("single_face_smile.mp4", 1280),
]


def decode_fps(path: Path, repeats: int) -> tuple[float, int]:
    frames, elapsed = 0, 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        capture = cv2.VideoCapture(str(path))
        while capture.read()[0]:
            frames += 1
        capture.release()
        elapsed += time.perf_counter() - start
    return frames / elapsed, frames // repeats


def ingest_fps(settings: IngestSettings, producer, path: Path, max_width: int,
               repeats: int) -> tuple[float, int, int]:
    published, dropped, elapsed = 0, 0, 0.0
    for run in range(repeats):
        camera = CameraConfig(id=f"bench{run}", url=str(path), fps=0, mode=PacingMode.FAST,
                              max_width=max_width, session={"id": f"bench-{run}"})
        service = IngestService(settings, [camera], producer)  # fresh counters per run
        start = time.perf_counter()
        code = service.run()
        elapsed += time.perf_counter() - start
        counts = service.metrics.counts(camera.id)
        if code != 0 or counts.published == 0:
            raise SystemExit(f"ingest run failed on {path.name} (exit {code})")
        published += counts.published
        dropped += counts.dropped_total
    return published / elapsed, published // repeats, dropped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    missing = [name for name, _ in CASES if not (VIDEOS / name).is_file()]
    if missing:
        raise SystemExit(f"test videos missing in {VIDEOS}: {', '.join(missing)}")
    rows = []
    with EmbeddedKafka() as broker:
        settings = IngestSettings.load(kafka_bootstrap_servers=broker.bootstrap,
                                       topic_prefix="bench")
        ensure_topics(settings)
        producer = make_producer(settings, kafka_producer)
        try:
            ingest_fps(settings, producer, VIDEOS / CASES[-1][0], 1280, 1)  # warm-up
            for name, max_width in CASES:
                path = VIDEOS / name
                # Alternate peer and ingest runs so load from other jobs hits both alike.
                peer_runs, our_runs = [], []
                for _ in range(args.repeats):
                    peer_runs.append(decode_fps(path, 1))
                    our_runs.append(ingest_fps(settings, producer, path, max_width, 1))
                peer = median(r[0] for r in peer_runs)
                ours = median(r[0] for r in our_runs)
                frames, published = peer_runs[0][1], our_runs[0][1]
                dropped = sum(r[2] for r in our_runs)
                rows.append(dict(clip=name, max_width=max_width, frames=frames,
                                 frames_published=published, dropped=dropped,
                                 ingest_fps=round(ours, 1), opencv_decode_fps=round(peer, 1),
                                 ratio=round(ours / peer, 3)))
        finally:
            producer.close(timeout=10)
    print_table(rows)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "benchmark": "ingest", "peer": "plain OpenCV decode of the same file (upper bound)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "opencv": cv2.__version__},
        "repeats": args.repeats, "statistic": "median frames/s over repeats", "rows": rows}, indent=2))
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


def print_table(rows: list[dict]) -> None:
    header = f"{'clip':<24}{'max_w':>6}{'frames':>8}{'ingest f/s':>12}{'decode f/s':>12}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['clip']:<24}{r['max_width']:>6}{r['frames']:>8}{r['ingest_fps']:>12.1f}"
              f"{r['opencv_decode_fps']:>12.1f}{r['ratio']:>8.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
