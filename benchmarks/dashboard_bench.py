"""Dashboard speed: p95 callback time per page and Redis commands per refresh, 1 vs 5 viewers.

    .venv/bin/python -m benchmarks.dashboard_bench [--cameras 100] [--sessions 10000]
        [--days 30] [--live-s 3600] [--ticks 10]

Seeds a real Valkey (embedded, unless REDIS_URL is set: then under a throw-away prefix)
through the product's own write paths: each camera's live session (an hour of 1-fps
detections, 0-3 faces) and the closed sessions spread over the days (their summaries
written at close) through aggregator.store.SessionStore, 30 days of hourly rollups per
camera through moodstream.rollups.RollupWriter, the live hours through the aggregator's
rollup writer (whose pass it times). Then it drives the real Dash app (dashboard.app.create_app) through its
HTTP callback endpoint (Flask's test client: JSON in and out, no browser, no network),
as the browser would on each refresh tick: the shell's callbacks plus the page's own.

"Callback time" is one /_dash-update-component request, server side, JSON encoding
included. With 1 viewer every request reads Redis (a cold tick); with 5, the shared
reader answers four of them from its cache. Commands are counted with INFO commandstats.
Prints a table and writes benchmarks/out/dashboard.json; target p95 <= 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import redis

from aggregator.rollups import HourlyRollups
from aggregator.store import SessionStore
from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS
from moodstream.redis_keys import ROLLUP_FIELDS, RedisKeys
from moodstream.rollups import DAY_S, HOUR_S, PartWrite, RollupWriter, hour_of
from moodstream.schemas import ControlEvent, DetectionMessage

OUT = Path(__file__).resolve().parent / "out" / "dashboard.json"
TARGET_MS = 200.0
REFRESH_S = 2.0
VIEWERS = (1, 5)


# ---------------------------------------------------------------- seeding

def _probs(rng: random.Random, mood: float) -> dict[str, float]:
    raw = {e: rng.random() * 0.2 for e in EMOTIONS}
    raw["happy" if mood > 0 else "sad"] += abs(mood)
    total = sum(raw.values())
    return {e: v / total for e, v in raw.items()}


def _detections(rng: random.Random, camera: str, session: str, started: float,
                seconds: int) -> list[DetectionMessage]:
    mood = rng.uniform(-0.8, 0.8)
    out = []
    for t in range(seconds):
        faces = [{"box": (40 * i, 20, 48, 48), "score": 0.9, "track_id": t // 30 * 3 + i,
                  "probs": _probs(rng, mood)} for i in range(rng.choice((0, 1, 1, 2, 3)))]
        out.append(DetectionMessage(camera_id=camera, session_id=session, seq=t,
                                    capture_ts=started + t, offset_s=float(t), faces=faces))
    return out


def _start(store: SessionStore, camera: str, session: str, ts: float) -> None:
    store.start_session(ControlEvent(type="session_start", camera_id=camera,
                                     session_id=session, ts=ts, source=f"rtsp://cams/{camera}"))


def seed_sessions(store: SessionStore, cameras: list[str], sessions: int, days: int,
                  live_s: int, now: float, rng: random.Random) -> dict[str, list[str]]:
    """Each camera's live session (live_s seconds up to now) and closed ones over the days."""
    live, closed = [], []
    for camera in cameras:
        session = f"{camera}-live"
        _start(store, camera, session, now - live_s)
        messages = _detections(rng, camera, session, now - live_s, live_s)
        for i in range(0, len(messages), 500):
            store.apply_detections(messages[i:i + 500])
        live.append(session)
    spacing = days * DAY_S / max(1, sessions - len(cameras))
    for i in range(sessions - len(cameras)):
        camera, session = cameras[i % len(cameras)], f"s{i:05d}"
        started = now - days * DAY_S + i * spacing
        _start(store, camera, session, started)
        store.apply_detections(_detections(rng, camera, session, started, 10))
        store.close_session(session, "complete")
        store.write_summary(session)
        closed.append(session)
    return {"live": live, "closed": closed}


def seed_rollups(client: redis.Redis, keys: RedisKeys, cameras: list[str], days: int,
                 now: float, rng: random.Random) -> int:
    """days of hourly rollups per camera (a daily and weekly pattern), then the live hours."""
    writer, written = RollupWriter(client, keys, 400 * DAY_S, 0), 0
    first = hour_of(now) - days * 24 * HOUR_S
    for day in range(days):
        parts = []
        for camera in cameras:
            for h in range(24):
                hour = first + (day * 24 + h) * HOUR_S
                traffic = max(0.0, np.sin((hour % DAY_S) / DAY_S * np.pi)) * rng.uniform(5, 40)
                faces = traffic * 60
                values = [0.0] * len(ROLLUP_FIELDS)
                values[:4] = [3600 * 5, faces, faces * rng.uniform(-0.4, 0.5), round(traffic)]
                values[4:] = [faces / len(EMOTIONS)] * len(EMOTIONS)
                parts.append(PartWrite(camera, hour, "bench-history", values))
        written += writer.write(parts)
    return written


def rollup_pass(client: redis.Redis, keys: RedisKeys) -> dict:
    """The aggregator's rollup writer over every live session: a first pass (every hour
    recomputed) and a steady one 30 s later (only the current hours that moved)."""
    hourly, now = HourlyRollups(client, keys, 400 * DAY_S, 0), time.time()
    out = {}
    for name, at in (("first_pass_s", now), ("steady_pass_s", now + 30)):
        client.hset(keys.meta("cam000-live"), "updated_at", repr(at))  # one camera moved
        start = time.perf_counter()
        hourly.run(at)
        out[name] = time.perf_counter() - start
    return out


# ---------------------------------------------------------------- driving the app

class Pages:
    """The real app behind Flask's test client; calls callbacks as the browser does."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, now: float):
        from dashboard.app import create_app
        from dashboard.data import DashboardData
        from dashboard.settings import DashboardSettings
        self.now = now
        self.data = DashboardData(client, keys, clock=lambda: self.now, cache_s=REFRESH_S)
        self.app = create_app(DashboardSettings.load(refresh_s=REFRESH_S), self.data)
        self.http = self.app.server.test_client()
        assert self.http.get("/").status_code == 200  # the pages router registers itself
        self.http.get("/_dash-dependencies")

    def callback(self, output_id: str) -> str:
        return next(key for key in self.app.callback_map if f"{output_id}." in key)

    def call(self, output_id: str, values: dict[str, object]) -> tuple[float, int]:
        """One /_dash-update-component request: (milliseconds, HTTP status)."""
        key = self.callback(output_id)
        spec = self.app.callback_map[key]
        outputs = [dict(zip(("id", "property"), part.rsplit(".", 1)))
                   for part in key.strip(".").split("...")]
        body = {"output": key, "outputs": outputs if key.startswith("..") else outputs[0],
                "inputs": [dict(i, value=values.get(f"{i['id']}.{i['property']}"))
                           for i in spec["inputs"]],
                "state": [dict(s, value=values.get(f"{s['id']}.{s['property']}"))
                          for s in spec.get("state", [])],
                "changedPropIds": ["tick.n_intervals"]}
        start = time.perf_counter()
        response = self.http.post("/_dash-update-component", json=body)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code not in (200, 204):
            raise RuntimeError(f"{output_id}: HTTP {response.status_code}: {response.data[:300]!r}")
        return elapsed, response.status_code


SHELL = ("redis-status", "workers-status")


def page_calls(live_session: str) -> dict[str, list[tuple[str, dict]]]:
    """What one viewer's browser asks on one tick, per page (the shell's callbacks too)."""
    tick = {"tick.n_intervals": 1}
    return {
        "overview": [("overview-state", dict(tick, **{"trend-window.value": 300}))],
        "sessions": [("sessions-table", tick)],
        # A column sort reads the range's newest 2,000 sessions (4 x session_list_limit) once
        # and keeps the closed ones' rows: the first tick is the cold one.
        "sessions (lowest sentiment first, all dates)": [("sessions-table", dict(
            tick, **{"sessions-order.value": "sentiment-asc"}))],
        "sessions (lowest sentiment first, 3 UTC dates)": [("sessions-table", dict(
            tick, **{"sessions-order.value": "sentiment-asc",
                     "filter-dates.start_date": _utc_day(time.time() - 2 * DAY_S)}))],
        "history (today, site)": [("history-summary", {"history-range.value": "today"})],
        "history (7 days, site)": [("history-summary", {"history-range.value": "7d"})],
        "history (30 days, site)": [("history-summary", {"history-range.value": "30d"})],
        "history (30 days, 8 cameras)": [("history-summary", {
            "history-range.value": "30d",
            "history-cameras.value": [f"cam{c:03d}" for c in range(8)]})],
        "session drill-down (live, 1 h)": [("session-title", dict(
            tick, **{"url.pathname": f"/session/{live_session}"}))],
    }


def _utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).date().isoformat()


def commands(client: redis.Redis) -> int:
    return sum(stat["calls"] for name, stat in client.info("commandstats").items()
               if name != "cmdstat_info")


def measure(pages: Pages, client: redis.Redis, calls: list[tuple[str, dict]], viewers: int,
            ticks: int) -> dict:
    """ticks refreshes of `viewers` viewers: every request's time, commands per refresh."""
    times, per_tick = [], []
    for _ in range(ticks):
        pages.now += REFRESH_S  # a new tick: the shared reader's cache turns over
        before = commands(client)
        for _viewer in range(viewers):
            for output_id, values in [*((s, {"tick.n_intervals": 1}) for s in SHELL), *calls]:
                elapsed, _status = pages.call(output_id, values)
                if (output_id, values) in calls:
                    times.append(elapsed)
        per_tick.append(commands(client) - before - 1)  # INFO's own command
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "max_ms": float(max(times)), "calls": len(times),
            "commands_per_refresh": float(np.median(per_tick))}


def run(args, client: redis.Redis, keys: RedisKeys) -> dict:
    rng, now = random.Random(11), time.time()
    cameras = [f"cam{c:03d}" for c in range(args.cameras)]
    store = SessionStore(client, keys, DEFAULT_VALENCE, bucket_ttl_s=0, summary_ttl_s=0,
                         ema_alpha=0.3)
    t0 = time.perf_counter()
    sessions = seed_sessions(store, cameras, args.sessions, args.days, args.live_s, now, rng)
    parts = seed_rollups(client, keys, cameras, args.days, now, rng)
    seeded_s = time.perf_counter() - t0
    passes = rollup_pass(client, keys)
    print(f"seeded {len(cameras)} cameras, {args.sessions} sessions, {parts} rollup parts "
          f"in {seeded_s:.0f} s; Redis {client.info('memory')['used_memory_human']}; rollup "
          f"pass over the live sessions: first {passes['first_pass_s']:.2f} s, steady "
          f"{passes['steady_pass_s']:.2f} s", flush=True)
    pages = Pages(client, keys, time.time())
    for output_id, values in page_calls(sessions["live"][0])["overview"]:
        pages.call(output_id, values)  # warm-up: imports, templates, script loading
    results = {}
    for page, calls in page_calls(sessions["live"][0]).items():
        results[page] = {f"{v} viewer{'s' if v > 1 else ''}": measure(pages, client, calls, v,
                                                                       args.ticks)
                         for v in VIEWERS}
        one, five = results[page]["1 viewer"], results[page]["5 viewers"]
        print(f"{page:32s} p95 {one['p95_ms']:7.1f} ms (1 viewer) {five['p95_ms']:7.1f} ms "
              f"(5)   commands/refresh {one['commands_per_refresh']:6.0f} (1) "
              f"{five['commands_per_refresh']:6.0f} (5)", flush=True)
    return {"seeded_s": seeded_s, "parts": parts, "rollup_pass": passes, "pages": results}


def table(results: dict) -> str:
    lines = ["| page | p95 ms, 1 viewer | p50 ms | p95 ms, 5 viewers | Redis commands per "
             "refresh, 1 viewer | 5 viewers | p95 ≤ 200 ms |", "|---|---|---|---|---|---|---|"]
    for page, by_viewers in results["pages"].items():
        one, five = by_viewers["1 viewer"], by_viewers["5 viewers"]
        lines.append(f"| {page} | {one['p95_ms']:.0f} | {one['p50_ms']:.0f} | "
                     f"{five['p95_ms']:.0f} | {one['commands_per_refresh']:.0f} | "
                     f"{five['commands_per_refresh']:.0f} | "
                     f"{'yes' if one['p95_ms'] <= TARGET_MS else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dashboard_bench", description=__doc__)
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--sessions", type=int, default=10_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--live-s", type=int, default=3600, help="seconds of each live session")
    p.add_argument("--ticks", type=int, default=10, help="refreshes measured per page")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.sessions < args.cameras:
        p.error("--sessions must be at least --cameras (each camera has a live session)")
    with ExitStack() as stack:
        url = os.environ.get("REDIS_URL")
        if not url:
            from moodstream.embedded import EmbeddedRedis
            url = stack.enter_context(EmbeddedRedis()).url
        client = redis.Redis.from_url(url, decode_responses=True)
        keys = RedisKeys(f"bench{uuid.uuid4().hex[:6]}")
        try:
            results = run(args, client, keys)
        finally:
            for key in client.scan_iter(f"{keys.prefix}:*", count=5000):
                client.unlink(key)
    results.update(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
                   load=os.getloadavg(), args=vars(args) | {"out": str(args.out)},
                   target_ms=TARGET_MS)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
