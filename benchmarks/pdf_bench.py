"""PDF reports: the charts drawn by kaleido (plotly's exporter, driving a Chromium) against
matplotlib (pure Python + its C extensions), the layout being fpdf2 in both.

`python -m benchmarks.pdf_bench [--reports 5] [--kaleido-path DIR]`

Each path runs in a fresh process, which writes one session report of a live camera's hour
(3,600 one-second buckets, four charts) several times: start-up is the time from the
process's start to the first PDF (imports, and for kaleido the browser's launch), then the
median time per report, and the peak memory of the process and of its children (kaleido's
Chromium). Kaleido is not in the locks (matplotlib won): install it into a folder
(`pip install --target DIR kaleido==1.5.0`) and pass --kaleido-path DIR; it finds Debian's
Chromium on the PATH. Results: benchmarks/RESULTS.md ("PDF reports").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
REPO = Path(__file__).resolve().parents[1]
# What each path adds to the production lock (fpdf2 is in both).
PACKAGES = {"matplotlib": ["matplotlib", "contourpy", "cycler", "kiwisolver", "pyparsing"],
            "kaleido": ["kaleido", "choreographer", "logistro", "simplejson"]}
SHARED_PACKAGES = ["fpdf2", "defusedxml", "fonttools"]


def hour_report() -> dict:
    """A one-hour session with every second filled, mood drifting, 0-4 faces a second."""
    from moodstream.emotions import EMOTIONS
    timeline = []
    for t in range(3600):
        mood = math.sin(t / 600)
        faces = (t * 7) % 5
        shares = {e: 0.05 for e in EMOTIONS} | {"happy": 0.35 + 0.3 * mood,
                                                "neutral": 0.35 - 0.3 * mood}
        timeline.append({"t": t, "frames": 5, "faces": faces, "people": min(faces, 3),
                         "sentiment": round(0.6 * mood, 4) if faces else None,
                         "emotions": shares if faces else {e: 0.0 for e in EMOTIONS}})
    faces = sum(row["faces"] for row in timeline)
    return {"session_id": "bench-hour", "camera_id": "cam-bench", "source": "rtsp://bench",
            "status": "closed", "started_at": "2026-11-30T09:00:00.000+00:00",
            "ended_at": "2026-11-30T10:00:00.000+00:00", "duration_s": 3600,
            "frames_processed": 18000, "frames_with_faces": 14400, "faces_detected": faces,
            "people": 40, "dominant_emotion": "happy", "mean_sentiment": 0.1,
            "emotion_totals": {e: faces / 7 for e in EMOTIONS}, "valence_weights": {},
            "alerts": [], "timeline": timeline}


def _children_rss_mb() -> float:
    import psutil
    children = psutil.Process().children(recursive=True)
    return sum(child.memory_info().rss for child in children) / 2**20


def worker(path: str, reports: int, started: float) -> dict:
    """Runs in the child process: imports, renders, times; prints one JSON line."""
    import faulthandler
    import resource
    faulthandler.dump_traceback_later(480, exit=True)  # a hung browser ends the run, loudly

    from moodstream.pdf_report import report_pdf
    chart_png = None
    if path == "kaleido":
        import kaleido
        import plotly.io as pio

        from moodstream.chart_images import DPI
        kaleido.start_sync_server(silence_warnings=True)

        def chart_png(fig, width_in, height_in):  # noqa: F811 - the kaleido renderer
            return pio.to_image(fig, format="png", width=round(width_in * 96),
                                height=round(height_in * 96), scale=DPI / 96)
    report = hour_report()
    render = (lambda: report_pdf(report, chart_png)) if chart_png else (lambda: report_pdf(report))
    sizes, times = [], []
    for _ in range(reports + 1):
        t0 = time.perf_counter()
        sizes.append(len(render()))
        times.append(time.perf_counter() - t0)
        if len(times) == 1:
            first_pdf_s = time.time() - started
    children = _children_rss_mb()
    if path == "kaleido":
        kaleido.stop_sync_server(silence_warnings=True)
    return {"path": path, "startup_to_first_pdf_s": round(first_pdf_s, 2),
            "per_report_median_s": round(statistics.median(times[1:]), 3),
            "pdf_kb": round(sizes[-1] / 1024), "rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "children_rss_mb": round(children)}


def seed_day(client, keys, camera: str, midnight: float) -> None:
    """24 closed one-hour sessions of one camera, every second with 2 faces, written
    straight into the data model (the aggregator's path is benchmarked elsewhere)."""
    from moodstream.emotions import EMOTIONS
    from moodstream.redis_keys import bucket_field
    for hour in range(24):
        sid, started = f"{camera}-h{hour:02d}", midnight + hour * 3600
        buckets = {}
        for t in range(3600):
            buckets |= {bucket_field(t, "frames"): 5, bucket_field(t, "faces"): 2,
                        bucket_field(t, "sentiment_sum"): 0.4,
                        **{bucket_field(t, f"p:{e}"): 2 / 7 for e in EMOTIONS}}
        pipe = client.pipeline(transaction=False)
        pipe.hset(keys.meta(sid), mapping={"camera_id": camera, "status": "closed",
                                           "started_at": started, "ended_at": started + 3600})
        pipe.hset(keys.totals(sid), mapping={"frames": 18000, "faces": 7200,
                                             "frames_with_faces": 18000, "sentiment_sum": 1440,
                                             **{f"p:{e}": 7200 / 7 for e in EMOTIONS}})
        pipe.hset(keys.buckets(sid), mapping=buckets)
        pipe.hset(keys.bucket_tracks(sid), mapping={str(t): 2 for t in range(3600)})
        pipe.zadd(keys.sessions, {sid: started})
        pipe.execute()


def period_day() -> dict:
    """A camera's day report (24 one-hour sessions, 86,400 buckets) from a real Valkey:
    Redis reads + adding up, then each format."""
    from moodstream.embedded import EmbeddedRedis
    from moodstream.period_report import build_period_report, parse_period, render_period
    from moodstream.redis_keys import RedisKeys
    import redis
    period, keys = parse_period(day="2026-11-30"), RedisKeys("bench")
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        seed_day(client, keys, "cam-day", period.start.timestamp())
        t0 = time.perf_counter()
        report = build_period_report(client, keys, "cam-day", period)
        result = {"sessions": report["session_count"],
                  "build_s": round(time.perf_counter() - t0, 2)}
        for fmt in ("json", "csv", "html", "pdf"):
            t0 = time.perf_counter()
            render_period(report, fmt)
            result[f"{fmt}_s"] = round(time.perf_counter() - t0, 2)
        client.close()
    return result


def _installed_mb(packages: list[str]) -> float:
    total = 0
    for name in packages:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        total += sum((dist.locate_file(f).stat().st_size for f in dist.files or []
                      if dist.locate_file(f).exists()), 0)
    return round(total / 2**20, 1)


def _chromium_mb() -> float | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Installed-Size}\n", "chromium",
                              "chromium-common"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return round(sum(int(v) for v in out.stdout.split()) / 1024, 1)


def run_path(path: str, reports: int, kaleido_path: str | None) -> dict:
    env = dict(os.environ)
    if path == "kaleido" and kaleido_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [kaleido_path, str(REPO)]))
        sys.path.insert(0, kaleido_path)  # for _installed_mb
    code = ("import json, psutil; started = psutil.Process().create_time(); "
            "from benchmarks.pdf_bench import worker; "
            f"print(json.dumps(worker({path!r}, {reports}, started)))")
    # Files, not pipes: Chromium's crash handler outlives the worker and would hold a pipe
    # open, so waiting for its end would wait for ever.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code_ = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, stdout=out,
                               stderr=err, timeout=900).returncode
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code_:
        return {"path": path, "error": stderr.strip().splitlines()[-1:]}
    result = json.loads(stdout.strip().splitlines()[-1])
    result["packages_mb"] = _installed_mb(PACKAGES[path])
    if path == "kaleido":
        result["chromium_mb"] = _chromium_mb()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=5, help="warm reports timed per path")
    parser.add_argument("--kaleido-path", help="folder holding kaleido (pip install --target)")
    parser.add_argument("--paths", nargs="+", choices=tuple(PACKAGES),
                        default=list(PACKAGES))
    args = parser.parse_args()
    results = [run_path(path, args.reports, args.kaleido_path) for path in args.paths]
    if "kaleido" not in args.paths or not args.kaleido_path:
        print("kaleido: not measured (pass --kaleido-path DIR)")
    print(f"{'path':<12}{'start->1st PDF s':>18}{'per report s':>14}{'PDF KB':>8}"
          f"{'RSS MB':>8}{'child RSS MB':>14}{'pkgs MB':>9}{'Chromium MB':>13}")
    for r in results:
        if "error" in r:
            print(f"{r['path']:<12} failed: {r['error']}")
            continue
        print(f"{r['path']:<12}{r['startup_to_first_pdf_s']:>18}{r['per_report_median_s']:>14}"
              f"{r['pdf_kb']:>8}{r['rss_mb']:>8}{r['children_rss_mb']:>14}{r['packages_mb']:>9}"
              f"{str(r.get('chromium_mb', '-')):>13}")
    day = period_day()
    print("a camera's day (24 one-hour sessions) from Valkey: " +
          ", ".join(f"{k} {v}" for k, v in day.items()))
    OUT.mkdir(exist_ok=True)
    (OUT / "pdf_bench.json").write_text(json.dumps(
        {"results": results, "shared_mb": _installed_mb(SHARED_PACKAGES), "day": day},
        indent=2))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
