"""Scale-out: frames/s (and faces/s) applied with 1 and 2 detector processes, and detections/s
applied with 1 and 2 aggregator processes, each group sharing the partitions of its topic.

    python -m benchmarks.scale_bench                       # the measurement (minutes)
    python -m benchmarks.scale_bench --frames 16 --cameras 4 --detections 2000   # it runs

Every run gets fresh topics and Redis keys on one pair of embedded servers (Tansu, Valkey).
Detector runs: ingest publishes every camera's clip (fast mode) before any detector starts;
then K detectors and one aggregator start in one consumer group each, and the rate is taken
from the moment all K detectors hold partitions until every frame is applied. Aggregator
runs: the aggregator benchmark's synthetic detections (0-3 faces each, one session per
camera) are published first, then K aggregators start and the rate is taken the same way
(detections are too cheap to apply for a few thousand real frames to time them). The harness (ScaleRun) is also
what tests/moodstream/test_scaling.py drives. Writes benchmarks/out/scale_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from kafka.partitioner.default import murmur2

from moodstream.clients import ensure_topics, kafka_producer, redis_client
from moodstream.launcher import Service, Stack
from moodstream.redis_keys import RedisKeys
from moodstream.settings import CommonSettings
from moodstream.topics import Topics

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SHARED_VIDEOS = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared")) / "videos"
CLIP = SHARED_VIDEOS / "single_face_smile.mp4"  # 640x360, one face, 72 frames at 30 fps
ASSIGNED = re.compile(r"partitions assigned: (\S+)")


def camera_ids(count: int, partitions: int) -> list[str]:
    """Camera ids whose keys land on different partitions (kafka-python's murmur2
    partitioner, as ingest keys frames by camera id), so every member of a group that holds
    a partition gets a camera."""
    ids, used, n = [], set(), 0
    while len(ids) < count:
        camera = f"cam{n}"
        partition = (murmur2(camera.encode()) & 0x7FFFFFFF) % partitions
        if partition not in used or len(used) == partitions:
            ids.append(camera)
            used.add(partition)
        n += 1
    return ids


def make_clip(path: Path, frames: int, source: Path = CLIP) -> Path:
    """`frames` frames of the source clip played forwards and backwards, at its frame rate."""
    import cv2
    capture = cv2.VideoCapture(str(source))
    images = []
    while (frame := capture.read())[0]:
        images.append(frame[1])
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    capture.release()
    if not images:
        raise SystemExit(f"no frames in {source} (set MOODSTREAM_SHARED to the shared/ folder)")
    cycle = images + images[::-1]
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(frames):
        writer.write(cycle[i % len(cycle)])
    writer.release()
    return path


def camera_file(path: Path, clip: Path, cameras: list[str], fps: float, mode: str) -> Path:
    """One ingest process for every camera; each camera is one session named after it."""
    path.write_text(json.dumps({  # JSON is YAML: ingest reads it as a camera file
        "defaults": {"fps": fps, "mode": mode, "purpose": "scale-out test", "notice": True},
        "cameras": [{"id": cam, "url": str(clip), "session": {"id": f"s-{cam}"}}
                    for cam in cameras]}))
    return path


def assigned_partitions(service: Service) -> set[str] | None:
    """The partitions the service's consumer holds by its last log line saying so (None
    before it logged any)."""
    found = ASSIGNED.findall(service.tail(1_000_000))
    if not found:
        return None
    return set() if found[-1] == "none" else set(found[-1].split(","))


@dataclass
class ScaleRun:
    """Detectors and aggregators in one consumer group each, on the stack's servers."""

    stack: Stack
    cameras: list[str]
    detectors: list[Service] = field(default_factory=list)
    aggregators: list[Service] = field(default_factory=list)
    killed: set[str] = field(default_factory=set)

    @property
    def settings(self) -> CommonSettings:
        return self.stack.settings

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    def child_env(self) -> dict[str, str]:
        return {"MOODSTREAM_KAFKA_PARTITIONS": str(self.settings.kafka_partitions)}

    def start_detectors(self, count: int, group: str = "det") -> list[Service]:
        started = [self.stack.start(f"detector:{group}{i}", "--group-id", f"{self.prefix}.{group}",
                                    "--detector-id", f"{group}{i}", module="detector",
                                    env=self.child_env())
                   for i in range(count)]
        self.detectors += started
        return started

    def start_aggregators(self, count: int) -> list[Service]:
        # Long idle and end timers: a session closes only once complete, so a lost frame
        # shows as a timeout, never as a short total.
        started = [self.stack.start(f"aggregator:{i}", "--group-id", f"{self.prefix}.agg",
                                    "--idle-timeout-s", "600", "--end-grace-s", "600",
                                    "--no-alerts", module="aggregator", env=self.child_env())
                   for i in range(count)]
        self.aggregators += started
        return started

    def start_ingest(self, clip: Path, fps: float, mode: str, log_dir: Path) -> Service:
        config = camera_file(log_dir / f"cameras-{self.prefix}.yaml", clip, self.cameras, fps, mode)
        return self.stack.start("ingest", "--config", str(config), module="ingest",
                                env=self.child_env())

    def kill(self, service: Service) -> None:
        """SIGKILL, as a crashed node: nothing settled, nothing committed, no goodbye."""
        self.killed.add(service.name)
        service.proc.send_signal(signal.SIGKILL)
        service.proc.wait(10)

    def spread(self, members: list[Service]) -> list[set[str]] | None:
        """Each live member's partitions once the group has settled (every member holds
        some, none twice, and all of them are held), else None."""
        held = [assigned_partitions(m) for m in members if m.running]
        if any(not h for h in held):
            return None
        union = set().union(*held)
        whole = {str(p) for p in range(self.settings.kafka_partitions)}
        if sum(map(len, held)) != len(union) or not self._covers(union, whole):
            return None
        return held

    @staticmethod
    def _covers(union: set[str], whole: set[str]) -> bool:
        # A detector logs "0,3"; an aggregator (two topics) "topic[0],topic[3],...".
        numbers = {re.sub(r".*\[(\d+)\]$", r"\1", p) for p in union}
        return whole <= numbers

    def wait(self, predicate, timeout: float, what: str) -> float:
        """Poll the predicate (failing fast if a service died); returns when it held."""
        deadline = time.monotonic() + timeout
        while not predicate():
            dead = [s.name for s in self.detectors + self.aggregators
                    if not s.running and s.name not in self.killed]
            if dead:
                raise AssertionError(f"{what}: {dead} exited: "
                                     + " | ".join(s.tail(600) for s in self.stack.services
                                                  if s.name in dead))
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} within {timeout:.0f} s; "
                                     + "; ".join(f"{s.name}: {s.last_line()}"
                                                 for s in self.stack.services))
            time.sleep(0.2)
        return time.monotonic()

    def applied(self, client, keys: RedisKeys, *fields: str) -> int:
        """The sum of these totals fields (default: frames handled, analysed + skipped)
        over every camera's session."""
        pipe = client.pipeline(transaction=False)
        for cam in self.cameras:
            pipe.hmget(keys.totals(f"s-{cam}"), *(fields or ("frames", "skipped_frames")))
        return sum(int(float(v or 0)) for row in pipe.execute() for v in row)

    def closed(self, client, keys: RedisKeys) -> bool:
        pipe = client.pipeline(transaction=False)
        for cam in self.cameras:
            pipe.hget(keys.meta(f"s-{cam}"), "status")
        return all(status == "closed" for status in pipe.execute())


# ---------------------------------------------------------------- the benchmark

def measure(stage: str, members: int, args, clip: Path, log_dir: Path) -> dict:
    """One run on fresh embedded servers: the frames/s (detector stage) or detections/s
    (aggregator stage) applied while `members` processes of that stage share the partitions."""
    prefix = f"scale{stage[0]}{members}"
    settings = CommonSettings.load(topic_prefix=prefix, redis_prefix=prefix,
                                   kafka_partitions=args.partitions)
    shutil.rmtree(log_dir / prefix, ignore_errors=True)  # logs are appended to: start afresh
    with Stack(settings, log_dir=log_dir / prefix) as stack:
        ensure_topics(stack.settings)
        run = ScaleRun(stack, camera_ids(args.cameras, args.partitions))
        client = redis_client(stack.settings, socket_timeout=30)  # a loaded machine is slow
        keys = RedisKeys(stack.settings.redis_prefix)
        if stage == "detector":
            expected = args.cameras * args.frames
            ingest = run.start_ingest(clip, 0, "fast", log_dir)
            run.wait(lambda: not ingest.running, 600, "ingest published every frame")
            run.start_aggregators(1)
            measured = run.start_detectors(members)
        else:  # detections produced before any aggregator runs
            expected = publish_detections(run, args.detections)
            measured = run.start_aggregators(members)
        t0 = run.wait(lambda: run.spread(measured) is not None, 120, f"{members} {stage}s assigned")
        n0, faces0 = run.applied(client, keys), run.applied(client, keys, "faces")
        t1 = run.wait(lambda: run.applied(client, keys) >= expected, 900, "every frame applied")
        n1, faces1 = run.applied(client, keys), run.applied(client, keys, "faces")
        spread = run.spread(measured) or []
        client.close()
    rate = (n1 - n0) / max(t1 - t0, 1e-9)
    return {"stage": stage, "members": members, "frames": expected, "measured_frames": n1 - n0,
            "seconds": round(t1 - t0, 3), "per_s": round(rate, 1),
            "faces_per_s": round((faces1 - faces0) / max(t1 - t0, 1e-9), 1),
            "partitions_per_member": [len(s) for s in spread]}


def publish_detections(run: ScaleRun, count: int) -> int:
    """The aggregator benchmark's demo-like detections (0-3 faces each), one session per
    camera, keyed by camera id as the detector publishes them."""
    from benchmarks.aggregator_bench import make_detections
    producer = kafka_producer(run.settings)
    topic = Topics(run.prefix).detections
    cameras = run.cameras
    for message in make_detections(count, cameras=len(cameras)):
        camera = cameras[int(message.camera_id.removeprefix("cam"))]
        message = message.model_copy(update={"camera_id": camera, "session_id": f"s-{camera}"})
        producer.send(topic, key=camera.encode(), value=message.to_bytes())
    producer.flush(60)
    producer.close()
    return count


def ratios(rows: list[dict]) -> dict[str, float | None]:
    by = {(r["stage"], r["members"]): r["per_s"] for r in rows}
    out = {}
    for stage in ("detector", "aggregator"):
        one, two = by.get((stage, 1)), by.get((stage, 2))
        out[stage] = round(two / one, 2) if one and two else None
    return out


def print_table(result: dict) -> None:
    print(f"\nscale-out on {os.cpu_count()} CPUs, {result['cameras']} cameras x "
          f"{result['frames_per_camera']} frames, {result['partitions']} partitions")
    print("| stage | processes | frames | measured | seconds | applied/s | faces/s | partitions each |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['stage']} | {r['members']} | {r['frames']} | {r['measured_frames']} | "
              f"{r['seconds']} | {r['per_s']} | {r['faces_per_s']} | {r['partitions_per_member']} |")
    for stage, ratio in result["ratios"].items():
        print(f"{stage}s 2 vs 1: {ratio}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300, help="frames per camera (detectors)")
    parser.add_argument("--detections", type=int, default=60_000, help="for the aggregators")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--stages", default="detector,aggregator")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    log_dir = OUT / "scale-logs"
    log_dir.mkdir(exist_ok=True)
    clip = make_clip(log_dir / f"clip-{args.frames}.mp4", args.frames)
    rows = [measure(stage, members, args, clip, log_dir)
            for stage in args.stages.split(",") for members in (1, 2)]
    result = {"cameras": args.cameras, "frames_per_camera": args.frames,
              "partitions": args.partitions, "cpus": os.cpu_count(),
              "load_avg": [round(x, 2) for x in os.getloadavg()], "rows": rows,
              "ratios": ratios(rows)}
    print_table(result)
    (OUT / "scale_bench.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
