"""Soak: the demo load for a long time, watching for leaks and for lag that grows.

    .venv/bin/python -m benchmarks.soak [--minutes 30] [--cameras 4] [--fps 5]

Starts what `moodstream demo` starts, on embedded servers (or the external ones
KAFKA_BOOTSTRAP_SERVERS / REDIS_URL name), under a topic and Redis prefix of its own:
aggregator, detector, dashboard and N cameras, each an ingest looping a clip in real-time
mode at --fps (the demo clips first, then ../shared/videos). The launcher supervises
them as in the demo. Every --every-s seconds it samples:

- the RSS of every service process and embedded server (psutil);
- each consumer group's lag: committed offsets (OffsetFetch) against the partitions' end
  offsets. Tansu 0.6 answers ListOffsets(latest) with its last batch's base offset + 1,
  not its last record's offset + 1, so each partition's last batch is read to find the
  true end;
- Redis used_memory, and the load averages.

Each group's produced and consumed rates (records/s: the slopes of its end and committed
offsets) say why a lag grows: input the workers cannot keep up with on this machine.

After the warm-up (10 % of the run, at least 60 s and at most 180 s unless --warmup-s),
it reports per service the RSS growth from the first to the last window of samples
(each 10 % of the samples after warm-up, at least 3), per group the lag's trend (slope of
a least-squares line, first and last window means) and Redis memory growth, checks the
required bounds (RSS growth < 10 % per service; lag not growing: the last window's mean
at most one second of input above the first's, --cameras x --fps records) and writes
benchmarks/out/soak.json. Exit status 1 when a bound is not met or a worker restarted.

The embedded servers' RSS is reported but not bound: Tansu's memory engine keeps every
message (it does not delete by retention, see README: Privacy), so it grows with the
frames of the run by design; Redis is judged by used_memory instead.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import secrets
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from kafka.errors import KafkaError

from moodstream.clients import ensure_topics, kafka_admin, redis_client
from moodstream.embedded import free_port
from moodstream.launcher import ServiceFailed, Stack
from moodstream.logs import setup_logging
from moodstream.supervision import LauncherSettings
from moodstream.topics import Topics

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SHARED_VIDEOS = Path(os.environ.get("MOODSTREAM_SHARED", REPO.parent / "shared")) / "videos"
RSS_BOUND_PCT = 10.0
SERVICE_KINDS = ("ingest", "detector", "aggregator", "dashboard")

log = logging.getLogger("moodstream")


# ---------------------------------------------------------------- set-up

def camera_clips(count: int) -> list[tuple[str, Path]]:
    """N cameras over the demo clips and the shared videos with faces, round robin."""
    clips = sorted((REPO / "demo" / "clips").glob("*.mp4"))
    clips += [p for p in (SHARED_VIDEOS / "single_face_smile.mp4",
                          SHARED_VIDEOS / "crowd_walk_1080p.mp4") if p.exists()]
    if not clips:
        raise SystemExit("no clips: run scripts/make_demo_clips.py or set MOODSTREAM_SHARED")
    return [(f"cam{i + 1}-{clip.stem}"[:48], clip)
            for i, clip in zip(range(count), itertools.cycle(clips))]


def start_demo(stack: Stack, cameras: list[tuple[str, Path]], fps: float,
               dashboard: bool) -> dict[str, str]:
    """The services `moodstream demo` starts; returns {service: consumer group}."""
    prefix = stack.settings.topic_prefix
    groups = {"detector": f"{prefix}.detector", "aggregator": f"{prefix}.aggregator"}
    stack.start("aggregator", "--group-id", groups["aggregator"])
    stack.start("detector", "--group-id", groups["detector"])
    if dashboard:
        stack.start("dashboard", "--host", "127.0.0.1", "--port", str(free_port()))
    for camera_id, clip in cameras:
        stack.start(f"ingest:{camera_id}", "--camera-id", camera_id, "--fps", str(fps),
                    "--mode", "realtime", "--loop", module="ingest",
                    env={"MOODSTREAM_INGEST_SOURCE": str(clip)})
    return groups


# ---------------------------------------------------------------- sampling

class LagProbe:
    """Consumer-group lag: committed offsets against each partition's true end offset."""

    def __init__(self, settings, groups: dict[str, list[str]]):
        from kafka import KafkaConsumer
        from kafka.structs import TopicPartition
        self.groups = groups  # group -> topics
        self.admin = kafka_admin(settings)
        self.consumer = KafkaConsumer(bootstrap_servers=settings.require_kafka().split(","),
                                      **settings.kafka_security(),
                                      enable_auto_commit=False, group_id=None,
                                      max_poll_records=100_000, fetch_max_wait_ms=100,
                                      max_partition_fetch_bytes=16 << 20,
                                      client_id="moodstream-soak-probe")
        topics = sorted({t for ts in groups.values() for t in ts})
        self.partitions = {t: [TopicPartition(t, p)
                               for p in sorted(self.consumer.partitions_for_topic(t) or [])]
                           for t in topics}

    def end_offsets(self) -> dict:
        from kafka.admin import OffsetSpec
        tps = [tp for tps in self.partitions.values() for tp in tps]
        latest = self.admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        reported = {tp: latest[tp].offset for tp in tps}
        # Reported as last batch base + 1 on Tansu: read from there to the true end.
        nonempty = {tp: offset for tp, offset in reported.items() if offset > 0}
        last: dict = {}
        if nonempty:
            self.consumer.assign(list(nonempty))
            for tp, offset in nonempty.items():
                self.consumer.seek(tp, offset - 1)
            deadline = time.monotonic() + 5
            while set(last) != set(nonempty) and time.monotonic() < deadline:
                for tp, records in self.consumer.poll(timeout_ms=200).items():
                    if records:
                        last[tp] = max(last.get(tp, -1), records[-1].offset)
        return {tp: max(reported[tp], last.get(tp, -1) + 1) for tp in tps}

    def sample(self) -> dict[str, dict[str, int]]:
        """Per group: lag (records not yet committed), committed and end offsets summed
        over its partitions (their slopes are the consumed and produced rates)."""
        ends = self.end_offsets()
        out = {"lag": {}, "committed": {}, "end": {}}
        for group, topics in self.groups.items():
            committed = self.admin.list_group_offsets({group: None}).get(group, {})
            lag = done_total = end_total = 0
            for topic in topics:
                for tp in self.partitions[topic]:
                    done = committed.get(tp)
                    done = done.offset if done and done.offset >= 0 else 0
                    lag += max(0, ends[tp] - done)
                    done_total, end_total = done_total + done, end_total + ends[tp]
            out["lag"][group], out["committed"][group], out["end"][group] = \
                lag, done_total, end_total
        return out

    def close(self) -> None:
        self.consumer.close(autocommit=False)
        self.admin.close()


def rss_mb(pid: int | None) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20 if pid else None
    except psutil.Error:
        return None


def take_sample(stack: Stack, probe: LagProbe, r, started: float) -> dict:
    processes = {h["name"]: h for h in stack.health()}
    memory = r.info("memory")
    try:
        offsets = probe.sample()
    except KafkaError as exc:  # one lost sample must not end a 30-minute run
        log.warning("lag not sampled: %s", exc)
        offsets = {"lag": None, "committed": None, "end": None}
    return {"t": round(time.monotonic() - started, 1),
            "rss_mb": {name: rss_mb(h["pid"]) for name, h in processes.items()},
            "pids": {name: h["pid"] for name, h in processes.items()},
            "restarts": {name: h["restarts"] for name, h in processes.items()},
            **offsets,
            "redis_used_memory_mb": memory["used_memory"] / 2**20,
            "load": [round(x, 2) for x in os.getloadavg()]}


def run_load(args) -> dict:
    prefix = f"soak{secrets.token_hex(3)}"
    settings = LauncherSettings.load(topic_prefix=prefix, redis_prefix=prefix)
    cameras = camera_clips(args.cameras)
    total_s = args.minutes * 60
    samples = []
    with Stack(settings, log_dir=OUT / "soak-logs") as stack:
        ensure_topics(stack.settings)
        topics = Topics(prefix)
        groups = start_demo(stack, cameras, args.fps, not args.no_dashboard)
        probe = LagProbe(stack.settings, {groups["detector"]: [topics.frames],
                                          groups["aggregator"]: [topics.detections,
                                                                 topics.control]})
        r = redis_client(stack.settings, socket_timeout=5)
        log.info("soak: %d cameras x %.1f fps for %.1f min; logs in %s", len(cameras), args.fps,
                 args.minutes, OUT / "soak-logs")
        started = time.monotonic()
        next_sample = started
        try:
            while time.monotonic() - started < total_s:
                stack.supervise()  # as in the demo: a crashed worker is restarted (and noted)
                if time.monotonic() >= next_sample:
                    samples.append(take_sample(stack, probe, r, started))
                    next_sample += args.every_s
                    last = samples[-1]
                    log.info("t=%4.0f s  lag %s  redis %.1f MB  load %s", last["t"],
                             last["lag"], last["redis_used_memory_mb"], last["load"])
                time.sleep(0.5)
            samples.append(take_sample(stack, probe, r, started))
        finally:
            probe.close()
            r.close()
    return {"prefix": prefix, "cameras": [{"id": c, "clip": str(p.relative_to(p.parents[1]))}
                                          for c, p in cameras], "samples": samples,
            "groups": groups}


# ---------------------------------------------------------------- analysis

def window(n: int) -> int:
    return max(3, n // 10)


def trend(ts: list[float], values: list[float]) -> dict:
    n = len(values)
    w = min(window(n), n)
    slope = float(np.polyfit(ts, values, 1)[0]) * 60 if n >= 2 else 0.0
    return {"first": float(np.mean(values[:w])), "last": float(np.mean(values[-w:])),
            "slope_per_min": slope, "max": float(max(values))}


def analyse(run: dict, args, warmup_s: float) -> dict:
    samples = [s for s in run["samples"] if s["t"] >= warmup_s]
    if len(samples) < 3:
        raise SystemExit(f"only {len(samples)} samples after the {warmup_s:.0f} s warm-up: "
                         "run longer or sample more often")
    ts = [s["t"] for s in samples]
    services = {}
    for name in run["samples"][-1]["rss_mb"]:
        kind = "server" if name in ("tansu", "valkey") else "service"
        points = [(s["t"], s["rss_mb"].get(name)) for s in samples]
        points = [(t, v) for t, v in points if v is not None]
        pids = {s["pids"].get(name) for s in samples}
        if len(points) < 3:
            continue
        tr = trend([t for t, _ in points], [v for _, v in points])
        growth = 100.0 * (tr["last"] - tr["first"]) / tr["first"]
        restarts = run["samples"][-1]["restarts"].get(name, 0)
        services[name] = {"kind": kind, "rss_first_mb": round(tr["first"], 1),
                          "rss_last_mb": round(tr["last"], 1), "rss_max_mb": round(tr["max"], 1),
                          "growth_pct": round(growth, 2),
                          "slope_mb_per_min": round(tr["slope_per_min"], 3),
                          "restarts": restarts, "processes": len(pids),
                          "met": None if kind == "server" else
                          bool(growth < RSS_BOUND_PCT and restarts == 0 and len(pids) == 1)}
    tolerance = args.cameras * args.fps  # one second of input
    lag = {}
    lagged = [s for s in samples if s["lag"] is not None]
    if len(lagged) < 3:
        raise SystemExit(f"only {len(lagged)} lag samples after the warm-up: Kafka unreachable?")
    for group in run["groups"].values():
        tr = trend([s["t"] for s in lagged], [s["lag"][group] for s in lagged])
        lag[group] = {k: round(v, 2) for k, v in tr.items()}
        lag[group]["met"] = bool(tr["last"] <= tr["first"] + tolerance)
        for what, key in (("produced", "end"), ("consumed", "committed")):
            rate = trend([s["t"] for s in lagged], [s[key][group] for s in lagged])
            lag[group][f"{what}_per_s"] = round(rate["slope_per_min"] / 60, 2)
    redis_tr = trend(ts, [s["redis_used_memory_mb"] for s in samples])
    loads = [s["load"] for s in run["samples"]]
    return {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": platform.python_version(), "platform": platform.platform()},
        "load_avg": {"first": loads[0], "last": loads[-1],
                     "mean_1min": round(float(np.mean([l[0] for l in loads])), 2)},
        "minutes": args.minutes, "cameras": run["cameras"], "fps_per_camera": args.fps,
        "sample_every_s": args.every_s, "warmup_s": warmup_s, "samples_after_warmup": len(samples),
        "window_samples": window(len(samples)),
        "bounds": {"rss_growth_pct_below": RSS_BOUND_PCT,
                   "lag_last_minus_first_at_most": tolerance},
        "services": services, "lag": lag,
        "redis_used_memory_mb": {"first": round(redis_tr["first"], 2),
                                 "last": round(redis_tr["last"], 2),
                                 "growth_pct": round(100 * (redis_tr["last"] - redis_tr["first"])
                                                     / redis_tr["first"], 2),
                                 "slope_mb_per_min": round(redis_tr["slope_per_min"], 4)},
        "note": "Tansu reports a partition's end offset as its last batch's base offset + 1; "
                "the lag uses the true end (read from that batch). Embedded servers are not "
                "bound: Tansu's memory engine keeps every message by design.",
        "samples": run["samples"],
    }


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


def print_table(result: dict) -> None:
    load = result["load_avg"]
    print(f"\nsoak: {len(result['cameras'])} cameras x {result['fps_per_camera']:g} fps, "
          f"{result['minutes']:g} min, warm-up {result['warmup_s']:.0f} s, "
          f"{result['samples_after_warmup']} samples after it (windows of "
          f"{result['window_samples']}); {result['machine']['cores']} cores, load "
          f"{load['first'][0]:.2f} -> {load['last'][0]:.2f} (mean {load['mean_1min']:.2f})")
    print(f"\n{'process':<28} {'RSS first':>10} {'RSS last':>10} {'growth':>8} {'MB/min':>8} "
          f"{'restarts':>8}  bound: growth < {RSS_BOUND_PCT:g} %")
    for name, s in sorted(result["services"].items(), key=lambda kv: (kv[1]["kind"], kv[0])):
        label = name if s["kind"] == "service" else f"{name} (server, not bound)"
        print(f"{label:<28} {s['rss_first_mb']:>8.1f}MB {s['rss_last_mb']:>8.1f}MB "
              f"{s['growth_pct']:>+7.2f}% {s['slope_mb_per_min']:>+8.3f} {s['restarts']:>8}  "
              f"{verdict(s['met'])}")
    print(f"\n{'consumer group lag':<28} {'first':>10} {'last':>10} {'max':>8} {'per min':>8} "
          f"{'in/s':>6} {'out/s':>6}  bound: last <= first + "
          f"{result['bounds']['lag_last_minus_first_at_most']:g}")
    for group, g in result["lag"].items():
        print(f"{group:<28} {g['first']:>10.1f} {g['last']:>10.1f} {g['max']:>8.0f} "
              f"{g['slope_per_min']:>+8.2f} {g['produced_per_s']:>6.1f} {g['consumed_per_s']:>6.1f}"
              f"  {verdict(g['met'])}")
    m = result["redis_used_memory_mb"]
    print(f"\n{'redis used_memory':<28} {m['first']:>8.2f}MB {m['last']:>8.2f}MB "
          f"{m['growth_pct']:>+7.2f}% {m['slope_mb_per_min']:>+8.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--fps", type=float, default=5.0, help="frames per second per camera")
    parser.add_argument("--every-s", type=float, default=10.0, help="sampling period")
    parser.add_argument("--warmup-s", type=float,
                        help="seconds excluded from the trends (default 10%% of the run, "
                             "60..180 s)")
    parser.add_argument("--no-dashboard", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT / "soak.json")
    args = parser.parse_args()
    setup_logging(os.environ.get("MOODSTREAM_LOG_LEVEL", "INFO"), "moodstream")
    warmup_s = args.warmup_s if args.warmup_s is not None else \
        min(180.0, max(60.0, 0.1 * args.minutes * 60))
    try:
        run = run_load(args)
    except ServiceFailed as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        return 1
    result = analyse(run, args, warmup_s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"\nwrote {args.out}")
    verdicts = [s["met"] for s in result["services"].values() if s["met"] is not None]
    verdicts += [g["met"] for g in result["lag"].values()]
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
