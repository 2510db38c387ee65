"""End-to-end latency under live load: capture -> visible in Redis.

Runs the services (embedded Tansu + Valkey, aggregator, detector, ingest in real-time mode)
and times EVERY frame applied in the sampled window: the aggregator's Lua script sets the
frame's bit in its run's seen bitmap in the same atomic step as all its updates, so polling
the bitmaps every 20 ms gives each frame's arrival in Redis (the midpoint between the poll
that last saw the bit clear and the first that saw it set: +-10 ms); its capture_ts
(ingest's capture clock) comes from the detections topic. Latency = arrival - capture_ts,
one host clock. (Sampling the cameras' live hashes instead sees only the newest frame
of a burst, the one that waited least, and so under-reports the tail.) Frames applied in
the window are set against the frames expected (cameras x fps x seconds): a frame lost or
still queued shows there. A frame the detector skipped (dead-lettered, or a live frame
dropped as stale) is applied but never analysed: it is counted as skipped, not timed.
The cameras here replay files in real time; ingest and the detector treat those as files
(no drop-oldest, no stale skip), so an overloaded pipeline shows as growing latency and
fewer frames applied than expected rather than as skipped frames.

    .venv/bin/python -m benchmarks.latency_bench [--seconds 60] [--fps 5] [--warmup 25]
    .venv/bin/python -m benchmarks.latency_bench --cameras 8 --width 1280 --height 720
    .venv/bin/python -m benchmarks.latency_bench --capacity --width 1280 --height 720 \\
        [--steps 2,4,8,12,16,20,24] [--limit-ms 500]

Without --cameras / --width: the demo's two clips, one ingest process each (the demo).
With --width/--height: every camera loops crowd_walk_1080p scaled to that size and played
forward then backward (one seamless 208-frame cycle at 10 fps, made once into
.cache/bench/ by benchmarks.e2e_bench.generated_clip), decoded in full and sampled at --fps.
With --cameras N: N cameras in ONE ingest process from a camera file (one reader thread per
camera, how a fleet is run: ingest/cameras.example.yaml), or one ingest process per camera
with --ingest-per-camera. All cameras start together, so their frames arrive in step: a
burstier load than unsynchronised real cameras.
--capacity ramps the camera count over --steps, a fresh stack per step (warm-up, then
--seconds sampled), and stops after the first failing step (p95 over --limit-ms, or any
frame skipped) once 8 cameras were measured; capacity = the largest count below the first
failing step.

There is no live peer: fer has no streaming mode (it analyses images or a video file), so
live latency is checked against the speed issue's targets only. Writes
benchmarks/out/latency.json (or latency_capacity.json with --capacity).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from moodstream.clients import ensure_topics, kafka_consumer, redis_client
from moodstream.launcher import Stack
from moodstream.redis_keys import RedisKeys
from moodstream.settings import CommonSettings
from moodstream.topics import Topics

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
NO_PEER = "no live peer: fer has no streaming mode, so live latency is checked against targets only"
SOURCE_FPS = 10.0
CYCLE_FRAMES = 208  # crowd_walk_1080p forward (105) and back (103): one seamless loop


def camera_sources(cameras: int | None, width: int | None, height: int | None) -> list[tuple[str, str]]:
    """(camera id, video path) per camera."""
    if width:
        from benchmarks.e2e_bench import generated_clip
        clip = generated_clip(fps=SOURCE_FPS, width=width, height=height, frames=CYCLE_FRAMES)
        return [(f"cam{i + 1:02d}", str(clip)) for i in range(cameras or 2)]
    clips = sorted((REPO / "demo" / "clips").glob("*.mp4"))
    if not clips:
        raise ValueError(f"no demo clips in {REPO / 'demo' / 'clips'}: run scripts/make_demo_clips.py")
    if cameras is None:
        return [(c.stem, str(c)) for c in clips]
    return [(f"cam{i + 1:02d}", str(clips[i % len(clips)])) for i in range(cameras)]


class Captures(threading.Thread):
    """Reads the detections topic: capture_ts of every frame, by (session, run, seq)."""

    def __init__(self, settings, topics: Topics):
        super().__init__(daemon=True)
        # A group of its own, from the earliest offset: it reads every detection (the group
        # join, a few seconds on Tansu, happens during the warm-up).
        self.consumer = kafka_consumer(settings, f"latency-bench-{uuid.uuid4().hex[:8]}",
                                       [topics.detections], fetch_max_wait_ms=50)
        self.capture: dict[tuple[str, str, int], float] = {}
        self.skipped: dict[tuple[str, str, int], str] = {}  # dead-lettered or stale: not analysed
        self.runs: set[tuple[str, str]] = set()
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=200).values():
                with self.lock:
                    for record in records:
                        m = json.loads(record.value)
                        key = (m["session_id"], m["run_id"], m["seq"])
                        self.capture[key] = float(m["capture_ts"])
                        if m.get("skipped"):
                            self.skipped[key] = m["skipped"]
                        self.runs.add((m["session_id"], m["run_id"]))
        self.consumer.close(autocommit=False)

    def pairs(self) -> list[tuple[str, str]]:
        with self.lock:
            return sorted(self.runs)


def new_bits(old: bytes, new: bytes) -> list[int]:
    """Offsets of the bits set in Redis bitmap `new` but not in `old` (offset 0 = the first
    byte's most significant bit, as SETBIT counts)."""
    if old == new:
        return []
    found = []
    for i, byte in enumerate(new):
        fresh = byte & ~(old[i] if i < len(old) else 0)
        if fresh:
            found += [i * 8 + b for b in range(8) if fresh & (0x80 >> b)]
    return found


def sample_latencies(r, keys: RedisKeys, captures: Captures, seconds: float, interval: float = 0.02,
                     tick=None) -> dict:
    """Every frame applied in Redis during `seconds`, from the runs' seen bitmaps (the Lua
    script sets a frame's bit in the same atomic step as all its updates): applied between
    the poll that last saw its bit clear and the one that first saw it set, taken as the
    midpoint (+-half the poll gap, ~10 ms). Latency = that time - its capture_ts."""
    known: dict[tuple[str, str], bytes] = {}
    applied: dict[tuple[str, str, int], tuple[float, float]] = {}
    last_sent = None
    deadline, next_tick = time.monotonic() + seconds, time.monotonic() + 1
    while True:
        pairs = captures.pairs()
        pipe = r.pipeline(transaction=False)
        for session, run in pairs:
            pipe.get(keys.seen(session, run))
        sent = time.time()
        bitmaps = pipe.execute()
        received = time.time()
        for pair, raw in zip(pairs, bitmaps):
            raw = raw or b""
            if pair in known and last_sent is not None:  # a run first seen now is a baseline
                for seq in new_bits(known[pair], raw):
                    applied[(*pair, seq)] = ((last_sent + received) / 2, received - last_sent)
            known[pair] = raw
        last_sent = sent
        if time.monotonic() >= deadline:
            break
        if tick and time.monotonic() >= next_tick:
            tick()
            next_tick += 1
        time.sleep(interval)
    time.sleep(1.0)  # the detections of the last frames applied are read by now
    with captures.lock:
        latencies = {k: at - captures.capture[k] for k, (at, _gap) in applied.items()
                     if k in captures.capture and k not in captures.skipped}
        skipped = [captures.skipped[k] for k in applied if k in captures.skipped]
    gaps = sorted(gap for _at, gap in applied.values())
    return {"latencies_s": list(latencies.values()), "applied": len(applied),
            "skipped": len(skipped), "skipped_kinds": sorted(set(skipped)),
            "unmatched": len(applied) - len(latencies) - len(skipped),
            "poll_gap_p95_ms": 1000 * gaps[int(0.95 * (len(gaps) - 1))] if gaps else None}


def _camera_file(path: Path, sources: list[tuple[str, str]], fps: float, max_width: int) -> Path:
    # JSON is YAML: ingest reads it as a camera file.
    path.write_text(json.dumps({
        "defaults": {"fps": fps, "mode": "realtime", "loop": True, "max_width": max_width,
                     "session": {"every_s": 0}, "purpose": "latency benchmark"},
        "cameras": [{"id": cam, "url": url} for cam, url in sources]}, indent=1))
    return path


def run(seconds: float, fps: float, warmup: float, cameras: int | None = None,
        width: int | None = None, height: int | None = None, per_camera: bool | None = None) -> dict:
    sources = camera_sources(cameras, width, height)
    per_camera = cameras is None if per_camera is None else per_camera
    load_before = [round(x, 2) for x in os.getloadavg()]
    settings = CommonSettings.load()  # embedded servers unless the env names external ones
    with Stack(settings, log_dir=OUT / "latency-logs") as stack, \
            tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        ensure_topics(stack.settings)
        stack.start("aggregator")
        stack.start("detector")
        size = ["--max-width", str(width)] if width else []
        if per_camera:
            for cam, url in sources:
                stack.start(f"ingest:{cam}", "--source", url, "--camera-id", cam, "--fps", str(fps),
                            "--mode", "realtime", "--loop", *size, module="ingest")
        else:
            config = _camera_file(Path(tmp) / "cameras.yaml", sources, fps, width or 1280)
            stack.start("ingest", "--config", str(config), module="ingest")
        r = redis_client(stack.settings, decode_responses=False)  # bitmaps are bytes
        keys = RedisKeys(stack.settings.redis_prefix)
        captures = Captures(stack.settings, Topics(stack.settings.topic_prefix))
        try:
            warm_until = time.monotonic() + warmup  # model load, group joins: not steady state
            while time.monotonic() < warm_until:
                stack.supervise()
                time.sleep(0.5)
            sampled = sample_latencies(r, keys, captures, seconds, tick=stack.supervise)
        finally:
            captures.stop.set()
            captures.join(5)
        restarts = {s.name: s.crashes.restarts for s in stack.services if s.crashes.restarts}
    all_ms = np.array(sampled["latencies_s"]) * 1000
    from benchmarks.e2e_bench import machine_info
    machine = machine_info()
    return {
        "machine": f"{machine['cpu']}, {machine['cores']} cores",
        "load_avg_before": load_before, "load_avg": [round(x, 2) for x in os.getloadavg()],
        "seconds": seconds, "warmup_s": warmup, "fps_per_camera": fps, "cameras": len(sources),
        "size": f"{width}x{height}" if width else "demo clips",
        "ingest": "one process per camera" if per_camera else "one process, camera file",
        "frames_sampled": int(all_ms.size), "frames_applied": sampled["applied"],
        "frames_skipped": sampled["skipped"], "skipped_kinds": sampled["skipped_kinds"],
        "frames_unmatched": sampled["unmatched"], "poll_gap_p95_ms": sampled["poll_gap_p95_ms"],
        "frames_expected": int(round(len(sources) * fps * seconds)),
        "p50_ms": float(np.percentile(all_ms, 50)) if all_ms.size else None,
        "p95_ms": float(np.percentile(all_ms, 95)) if all_ms.size else None,
        "max_ms": float(all_ms.max()) if all_ms.size else None,
        "restarts": restarts, "peer": NO_PEER,
    }


def run_capacity(steps: list[int], seconds: float, fps: float, warmup: float, width: int | None,
                 height: int | None, limit_ms: float = 500.0, per_camera: bool = False,
                 at_least: int = 8) -> dict:
    """Ramp the camera count; capacity = the largest count whose p95 <= limit_ms, below the
    first failing step. Stops after a failing step once `at_least` cameras were measured."""
    results, capacity, failed = [], 0, False
    for n in sorted(set(steps)):
        print(f"[live] {n} cameras: {warmup:g} s warm-up + {seconds:g} s ...", flush=True)
        step = run(seconds, fps, warmup, n, width, height, per_camera)
        step["ok"] = (step["p95_ms"] is not None and step["p95_ms"] <= limit_ms
                      and step["frames_skipped"] == 0)  # no frame given up to keep up
        results.append(step)
        if step["ok"] and not failed:
            capacity = n
        failed = failed or not step["ok"]
        if failed and n >= at_least:
            break
    return {"steps": results, "limit_ms": limit_ms, "capacity": capacity, "fps_per_camera": fps,
            "size": f"{width}x{height}" if width else "demo clips", "peer": NO_PEER}


def live_verdicts(live: dict) -> list[dict]:
    """The speed issue's live cells from a run() or run_capacity() result."""
    steps = live.get("steps", [live])
    out = []
    eight = [s for s in steps if s["cameras"] == 8 and s["size"] == "1280x720"]
    if eight and eight[0]["p95_ms"] is not None:
        p95 = eight[0]["p95_ms"]
        out.append({"measure": "live 8 x 5 fps 720p, capture -> Redis p95", "value": f"{p95:.0f} ms",
                    "required": "<= 250 ms", "aim": "<= 150 ms",
                    "required_met": p95 <= 250, "aim_met": p95 <= 150})
        lost = eight[0]["frames_skipped"]
        out.append({"measure": "live 8 x 5 fps 720p, frames skipped (not analysed)",
                    "value": str(lost), "required": "0", "aim": "-",
                    "required_met": lost == 0, "aim_met": None})
    if "capacity" in live and live.get("size") == "1280x720":
        top = max(s["cameras"] for s in steps)
        value = f"{live['capacity']} cameras" + (" (ramp top)" if live["capacity"] == top else "")
        out.append({"measure": f"live capacity, 720p 5 fps, p95 <= {live['limit_ms']:g} ms",
                    "value": value, "required": "reported", "aim": ">= 16",
                    "required_met": None, "aim_met": live["capacity"] >= 16})
    return out


def _f(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_steps(live: dict) -> None:
    steps = live.get("steps", [live])
    print(f"\n{'cameras':>8} {'size':>10} {'fps/cam':>8} {'sampled':>8} {'applied':>8} {'skipped':>8}"
          f" {'expected':>9} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}  load")
    for s in steps:
        print(f"{s['cameras']:>8} {s['size']:>10} {s['fps_per_camera']:>8g} {s['frames_sampled']:>8}"
              f" {_f(s['frames_applied']):>8} {s['frames_skipped']:>8} {s['frames_expected']:>9}"
              f" {_f(s['p50_ms']):>7}"
              f" {_f(s['p95_ms']):>7} {_f(s['max_ms']):>7}  {s['load_avg'][0]:.2f}"
              + (f"  restarts {s['restarts']}" if s["restarts"] else ""))
    if "capacity" in live:
        print(f"capacity: {live['capacity']} cameras with p95 <= {live['limit_ms']:g} ms "
              f"({steps[0]['ingest']})")
    print(NO_PEER)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="sampled per run / step")
    parser.add_argument("--fps", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=25)
    parser.add_argument("--cameras", type=int, help="camera count (default: the demo's clips)")
    parser.add_argument("--width", type=int, help="camera frame width (with --height)")
    parser.add_argument("--height", type=int)
    parser.add_argument("--ingest-per-camera", action="store_true",
                        help="one ingest process per camera instead of one with a camera file")
    parser.add_argument("--capacity", action="store_true", help="ramp the camera count")
    parser.add_argument("--steps", default="2,4,8,12,16,20,24", help="camera counts for --capacity")
    parser.add_argument("--limit-ms", type=float, default=500.0, help="p95 bound for --capacity")
    args = parser.parse_args(argv)
    try:
        if (args.width is None) != (args.height is None) or (args.width or 1) < 16 or (args.height or 1) < 16:
            raise ValueError("give --width and --height together, each at least 16")
        if args.cameras is not None and args.cameras < 1:
            raise ValueError("--cameras must be at least 1")
        if args.seconds <= 0 or args.fps <= 0 or args.warmup < 0:
            raise ValueError("--seconds and --fps must be positive, --warmup not negative")
        steps = [int(s) for s in args.steps.split(",") if s.strip()]
        if not steps or min(steps) < 1:
            raise ValueError("--steps: camera counts like 2,4,8,12,16")
        camera_sources(1, args.width, args.height)  # sources exist (and the clip is made) first
    except ValueError as exc:
        print(f"latency_bench: error: {exc}", file=sys.stderr)
        return 2
    per_camera = True if args.ingest_per_camera else None
    OUT.mkdir(parents=True, exist_ok=True)
    if args.capacity:
        result = run_capacity(steps, args.seconds, args.fps, args.warmup, args.width, args.height,
                              args.limit_ms, bool(args.ingest_per_camera))
        out = OUT / "latency_capacity.json"
    else:
        result = run(args.seconds, args.fps, args.warmup, args.cameras, args.width, args.height,
                     per_camera)
        out = OUT / "latency.json"
    out.write_text(json.dumps(result, indent=2))
    print_steps(result)
    for cell in live_verdicts(result):
        met = lambda flag: "-" if flag is None else ("met" if flag else "NOT met")  # noqa: E731
        print(f"{cell['measure']}: {cell['value']} (required {cell['required']}: "
              f"{met(cell['required_met'])}; aim {cell['aim']}: {met(cell['aim_met'])})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
