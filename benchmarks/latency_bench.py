"""End-to-end latency under demo load: capture -> visible in Redis.

Runs the demo's services (embedded Tansu + Valkey, aggregator, detector, one ingest per
demo clip in real-time mode) and samples every camera's live hash: each applied frame
carries capture_ts (ingest's capture clock) and applied_at (when its Lua update landed in
Redis), so latency = applied_at - capture_ts, all on one host clock.

    .venv/bin/python -m benchmarks.latency_bench [--seconds 60] [--fps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from moodstream.clients import ensure_topics, redis_client
from moodstream.launcher import Stack
from moodstream.redis_keys import RedisKeys
from moodstream.settings import CommonSettings

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def sample_latencies(r, keys: RedisKeys, cameras: list[str], seconds: float) -> dict[str, list[float]]:
    seen: dict[str, dict[float, float]] = {c: {} for c in cameras}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for cam in cameras:
            live = r.hmget(keys.camera_live(cam), "capture_ts", "applied_at")
            if live[0] and live[1]:
                seen[cam][float(live[0])] = float(live[1]) - float(live[0])
        time.sleep(0.02)
    return {cam: list(v.values()) for cam, v in seen.items()}


def run(seconds: float, fps: float, warmup: float) -> dict:
    clips = sorted((REPO / "demo" / "clips").glob("*.mp4"))
    settings = CommonSettings.load()  # embedded servers unless the env names external ones
    with Stack(settings, log_dir=OUT / "latency-logs") as stack:
        ensure_topics(stack.settings)
        stack.start("aggregator")
        stack.start("detector")
        for clip in clips:
            stack.start(f"ingest:{clip.stem}", "--source", str(clip), "--camera-id", clip.stem,
                        "--fps", str(fps), "--mode", "realtime", "--loop", module="ingest")
        r, keys = redis_client(stack.settings), RedisKeys(stack.settings.redis_prefix)
        time.sleep(warmup)  # model load and consumer-group joins are not steady state
        per_camera = sample_latencies(r, keys, [c.stem for c in clips], seconds)
    all_ms = np.array([v for vals in per_camera.values() for v in vals]) * 1000
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "seconds": seconds, "fps_per_camera": fps, "cameras": len(clips),
        "frames_sampled": int(all_ms.size),
        "p50_ms": float(np.percentile(all_ms, 50)) if all_ms.size else None,
        "p95_ms": float(np.percentile(all_ms, 95)) if all_ms.size else None,
        "max_ms": float(all_ms.max()) if all_ms.size else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--fps", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=25)
    args = parser.parse_args()
    result = run(args.seconds, args.fps, args.warmup)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latency.json").write_text(json.dumps(result, indent=2))
    print(f"{'cameras':>8} {'fps/cam':>8} {'frames':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    print(f"{result['cameras']:>8} {result['fps_per_camera']:>8} {result['frames_sampled']:>7} "
          f"{result['p50_ms']:>8.1f} {result['p95_ms']:>8.1f} {result['max_ms']:>8.1f}")


if __name__ == "__main__":
    main()
