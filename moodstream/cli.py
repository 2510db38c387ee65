"""`moodstream demo | analyze | report | sessions`: the product's front door.

demo     run every service on embedded (or external) servers with live demo cameras
analyze  push recorded videos and still images through the full distributed path, write reports
report   export the report of any session, or of a camera's day or week, of a running system
sessions list the sessions a running system knows
backfill-rollups  rebuild the hourly rollups from the session summaries that remain
roi-preview  draw a camera's ROI exclusion zones over one grabbed frame, into a local image
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import signal
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from moodstream.clients import ServiceUnavailable
from moodstream.embedded import EmbeddedServerError, free_port
from moodstream.logs import setup_logging
from moodstream.launcher import ServiceFailed, Stack, describe, running_stack_state, wait_until
from moodstream.reports import REPORT_FORMATS, ReportError, SessionNotFound, build_report
from moodstream.reports import format_for, render, write_output
from moodstream.settings import CommonSettings, SettingsError
from moodstream.rollups import DEFAULT_ROLLUP_TTL_S

log = logging.getLogger("moodstream")
REPO = Path(__file__).resolve().parents[1]
DEMO_CLIPS = REPO / "demo" / "clips"
EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_FAILED = 2, 3, 1


class UserError(ValueError):
    """A mistake in what the user asked for: one line, exit 2."""


class Stop(Exception):
    """SIGTERM arrived: unwind exactly like Ctrl-C."""


def _raise_stop(signum, frame):
    raise Stop()


# ---------------------------------------------------------------- helpers

def camera_id_for(path: Path, taken: set[str]) -> str:
    # An id starts with a letter or digit (schemas.ID_PATTERN): "_clip.mp4" is camera "clip".
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-._")[:48].rstrip("-._") or "video"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def new_session_id(camera_id: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{camera_id}-{stamp}-{uuid.uuid4().hex[:4]}"


def check_video(path: Path) -> int:
    """Frames in a readable video; UserError with the reason otherwise."""
    import cv2
    if not path.exists():
        raise UserError(f"video not found: {path}")
    if not path.is_file():
        raise UserError(f"not a video file: {path}")
    cap = cv2.VideoCapture(str(path))
    try:
        ok, _frame = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            raise UserError(f"cannot decode video: {path} (unsupported or corrupt file)")
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


def check_report_path(path: str | Path) -> Path:
    """Refuse, before any work, a report path that cannot be written: a directory, a path
    under a file, or a folder we may not write into."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"report path {path} is a directory: name a file, e.g. {path / 'report.json'}")
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    if not folder.is_dir():
        raise UserError(f"cannot write the report to {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write the report to {path}: permission denied")
    return path


def _write(report: dict, path: Path, fmt: str, renderer=render) -> Path:
    try:
        return write_output(path, renderer(report, fmt))
    except OSError as exc:
        raise UserError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


def _utc(ts: float) -> str:
    """A stored timestamp for display; a value no calendar holds (±1e20, inf) says so."""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"invalid-time({ts:g})"


def _redis_keys(settings: CommonSettings):
    from moodstream.redis_keys import RedisKeys
    return RedisKeys(settings.redis_prefix)


def _group(stack: Stack, service: str) -> list[str]:
    """Consumer groups per topic prefix: deployments sharing a broker never share a group."""
    return ["--group-id", f"{stack.settings.topic_prefix}.{service}"]


def _session_status(redis_client, keys, session_id: str) -> str:
    return redis_client.hget(keys.meta(session_id), "status") or ""


# ---------------------------------------------------------------- analyze

def cmd_analyze(args, settings: CommonSettings) -> int:
    from moodstream.analyze import analyze  # its imports only when analysing
    return analyze(args, settings)


def _start_file_ingest(stack: Stack, video: Path, camera_id: str, session_id: str, fps: float,
                       mode: str = "fast"):
    """One file as one ingest job. Its run id is pinned, so a restarted job replays the same
    (session, run_id, seq) frames and the aggregator drops the repeats instead of adding them.
    The job is a replay job: when the embedded broker restarts empty (its unconsumed frames
    gone), the launcher runs it again from the start, even when it had finished."""
    return stack.start(f"ingest:{camera_id}", "--camera-id", camera_id, "--session-id", session_id,
                       "--mode", mode, "--fps", str(fps), module="ingest", job=True, replay=True,
                       env={"MOODSTREAM_INGEST_SOURCE": str(video),
                            "MOODSTREAM_INGEST_RUN_ID": secrets.token_hex(6)})


def _summary_line(path: Path, report: dict) -> str:
    sentiment = report["mean_sentiment"]
    mood = "n/a" if sentiment is None else f"{sentiment:+.2f}"
    return (f"wrote {path}: {report['frames_processed']} frames, "
            f"{report['frames_with_faces']} with faces, {report['faces_detected']} faces, "
            f"dominant {report['dominant_emotion'] or 'none'}, mean sentiment {mood}")


# ---------------------------------------------------------------- demo

def demo_sources(source: str | None) -> list[tuple[str, str]]:
    if source:
        if not re.match(r"^[a-z][a-z0-9+.-]*://", source) and not source.isdigit():
            check_video(Path(source))
        return [("camera-1", source)]
    clips = sorted(DEMO_CLIPS.glob("*.mp4"))
    if not clips:
        raise UserError(f"no demo clips in {DEMO_CLIPS}: run scripts/make_demo_clips.py")
    return [(clip.stem, str(clip)) for clip in clips]


def cmd_demo(args, settings: CommonSettings) -> int:
    sources = demo_sources(args.source)
    port = args.port if args.port and _port_free(args.host, args.port) else free_port(args.host)
    url = f"http://{args.host}:{port}"
    with Stack(settings) as stack:
        from moodstream.clients import ensure_topics
        ensure_topics(stack.settings)
        stack.start("aggregator", *_group(stack, "aggregator"))
        stack.start("detector", *_group(stack, "detector"))
        stack.start("dashboard", "--host", args.host, "--port", str(port))
        for camera_id, src in sources:
            live = src.isdigit() or "://" in src
            mode = [] if live else ["--mode", "realtime", "--loop"]
            # The source goes through the environment: a camera URL's password must not
            # show in `ps` (argv is world-readable in /proc).
            stack.start(f"ingest:{camera_id}", "--camera-id", camera_id, "--fps", str(args.fps),
                        *mode, module="ingest", env={"MOODSTREAM_INGEST_SOURCE": src,
                                                     **_demo_privacy(args, camera_id, live)})
        if not wait_until(lambda: not _port_free(args.host, port), 90.0, check=stack.supervise):
            raise ServiceFailed(f"dashboard did not start listening on {url}")
        stack.publish_state(url)
        print(f"\nmoodstream demo: {len(sources)} camera(s), {describe(stack.settings)}\n"
              f"  dashboard: {url}\n  Ctrl-C stops everything.\n", flush=True)
        while True:
            stack.supervise()  # restarts a crashed worker; ServiceFailed on a crash loop
            time.sleep(0.5)


def _demo_privacy(args, camera_id: str, live: bool) -> dict[str, str]:
    """A demo camera's purpose and notice (ingest refuses a live camera without purpose)."""
    where = "live camera" if live else camera_id.replace("-", " ")
    return {"MOODSTREAM_INGEST_PURPOSE": args.purpose or f"demo: customer sentiment, {where}",
            "MOODSTREAM_INGEST_NOTICE": "true" if args.notice else "false"}


def _port_free(host: str, port: int) -> bool:
    import socket
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


# ---------------------------------------------------------------- report / sessions

def _settings_for_running_system(settings: CommonSettings) -> CommonSettings:
    if settings.redis_url:
        return settings
    state = running_stack_state()
    if not state:
        raise UserError("no running moodstream found: set REDIS_URL to your Redis, "
                        "or start `moodstream demo` first")
    return settings.model_copy(update={"redis_url": state["redis_url"],
                                       "redis_prefix": state.get("redis_prefix", "ms")})


def cmd_report(args, settings: CommonSettings) -> int:
    """One session's report, or (--camera with --day/--week) a camera's period report.
    Every input is checked before Redis is asked, so cron gets one line for a typo."""
    from moodstream.clients import REDIS_ERRORS, redis_client
    period = _report_period(args)
    fmt = format_for(args.report, args.format)
    check_report_path(args.report)
    settings = _settings_for_running_system(settings)
    r, keys = redis_client(settings), _redis_keys(settings)
    try:
        if period is None:
            report = build_report(r, keys, args.session_id)
            print(_summary_line(_write(report, Path(args.report), fmt), report))
            return 0
        from moodstream.period_report import build_period_report, render_period
        report = build_period_report(r, keys, args.camera, period)
        path = _write(report, Path(args.report), fmt, render_period)
    except REDIS_ERRORS as exc:  # lost after the first ping
        raise ServiceUnavailable(f"Redis failed while reading the report: {exc}") from None
    print(f"{_summary_line(path, report)} ({report['session_count']} sessions of "
          f"{report['camera_id']} in {report['label']})")
    return 0


def _report_period(args):
    """The --day/--week of a --camera report (None for a session report); UserError for a
    mix of the two kinds or a missing part, ReportError for a bad date or time zone."""
    if args.camera is None:
        if args.session_id is None:
            raise UserError("name a session, or a camera with --camera C --day YYYY-MM-DD "
                            "(or --week YYYY-Www)")
        if args.day or args.week:
            raise UserError("--day and --week need --camera (a session is reported whole)")
        return None
    if args.session_id is not None:
        raise UserError("name either a session or --camera, not both")
    if not (args.day or args.week):
        raise UserError("--camera needs --day YYYY-MM-DD or --week YYYY-Www")
    from moodstream.period_report import parse_period
    return parse_period(args.day, args.week, args.tz)


def cmd_backfill_rollups(args, settings: CommonSettings) -> int:
    """Rebuild the hourly rollups from the session summaries that remain (idempotent)."""
    from moodstream.clients import redis_client
    from moodstream.rollups import backfill
    if args.rollup_ttl_s < 0 or args.parts_ttl_s < 0:
        raise UserError("--rollup-ttl-s and --parts-ttl-s must be >= 0 (0 = keep)")
    settings = _settings_for_running_system(settings)
    stats = backfill(redis_client(settings), _redis_keys(settings), args.rollup_ttl_s,
                     args.parts_ttl_s)
    print(f"rollups rebuilt from {stats['sessions']} session summaries: "
          f"{stats['parts']} camera-hour parts written or kept "
          f"({stats['skipped']} unreadable summaries skipped)")
    return 0


def cmd_sessions(args, settings: CommonSettings) -> int:
    from moodstream.clients import redis_client
    settings = _settings_for_running_system(settings)
    r, keys = redis_client(settings), _redis_keys(settings)
    for session_id, started in r.zrevrange(keys.sessions, 0, args.limit - 1, withscores=True):
        meta = r.hgetall(keys.meta(session_id))
        print(f"{session_id}\t{meta.get('camera_id', '?')}\t{_utc(started)}\t{meta.get('status', '?')}")
    return 0


# ---------------------------------------------------------------- roi-preview

def cmd_roi_preview(args, settings: CommonSettings) -> int:
    """One frame of a camera with its ROI exclusion zones drawn, into a local image."""
    from moodstream.roi_preview import PreviewError, write_preview
    out = Path(args.out or f"roi-preview-{args.camera}.png")
    try:
        print(write_preview(Path(args.camera_file), args.camera, out, args.at))
    except PreviewError as exc:
        raise UserError(str(exc)) from None
    return 0


# ---------------------------------------------------------------- main

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moodstream", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the whole product with live demo cameras")
    d.add_argument("--source", help="rtsp/http URL, video path or webcam index instead of the demo clips")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8050)
    d.add_argument("--fps", type=float, default=5.0, help="frames per second sampled per camera")
    d.add_argument("--purpose", help="why the camera is analysed, shown on the dashboard "
                                     "(default: demo: customer sentiment, ...)")
    d.add_argument("--notice", action="store_true",
                   help="a notice (signage) tells the people in view (default: not posted)")
    a = sub.add_parser("analyze", help="analyse recorded videos and still images end to end "
                                       "and write reports")
    a.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video file, image (.jpg .jpeg .png .webp) or folder of images")
    a.add_argument("--annotate", metavar="DIR",
                   help="write copies of the images with faces boxed and labelled into this "
                        "local folder (only then are face images written anywhere)")
    a.add_argument("--report", required=True, help="output path; .json, .csv or .html")
    a.add_argument("--format", choices=("json", "csv", "html"))
    a.add_argument("--fps", type=float, default=0, help="sample rate; 0 = every frame")
    a.add_argument("--model", help="emotion model (default: models/emotion.keras)")
    a.add_argument("--timeout", type=float, default=900.0)
    a.add_argument("--idle-timeout", type=float, default=60.0)
    r = sub.add_parser("report", help="export a session's report, or a camera's day or week, "
                                      "from a running system")
    r.add_argument("session_id", nargs="?")
    r.add_argument("--camera", help="report this camera's sessions of --day or --week")
    when = r.add_mutually_exclusive_group()
    when.add_argument("--day", help="a calendar day, YYYY-MM-DD")
    when.add_argument("--week", help="an ISO week, YYYY-Www (Monday to Sunday)")
    r.add_argument("--tz", default="UTC", help="time zone of --day/--week (IANA name; UTC)")
    r.add_argument("--report", required=True, help="output path; .json, .csv, .html or .pdf")
    r.add_argument("--format", choices=REPORT_FORMATS)
    s = sub.add_parser("sessions", help="list recent sessions of a running system")
    s.add_argument("--limit", type=int, default=50)
    b = sub.add_parser("backfill-rollups",
                       help="rebuild hourly rollups from the session summaries that remain")
    b.add_argument("--rollup-ttl-s", type=int, default=DEFAULT_ROLLUP_TTL_S,
                   help="keep rollups this long, 0 = keep (default 400 days)")
    b.add_argument("--parts-ttl-s", type=int, default=90 * 86400,
                   help="keep per-session parts this long, 0 = keep (default 90 days)")
    v = sub.add_parser("roi-preview", help="draw a camera's ROI exclusion zones over one of "
                                           "its frames, into a local image")
    v.add_argument("camera_file", metavar="CAMERA_FILE", help="the camera file (.yaml/.toml)")
    v.add_argument("--camera", required=True, help="camera id in the file")
    v.add_argument("--out", help="image to write (.png or .jpg; default roi-preview-CAMERA.png)")
    v.add_argument("--at", type=float, default=0.0, help="seconds into a video file (default 0)")
    return p


COMMANDS = {"demo": cmd_demo, "analyze": cmd_analyze, "report": cmd_report, "sessions": cmd_sessions,
            "backfill-rollups": cmd_backfill_rollups, "roi-preview": cmd_roi_preview}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGINT explicitly too: a shell starts background jobs (`cmd &`, CI runners) with SIGINT
    # ignored, and Python then never turns Ctrl-C or `kill -INT` into KeyboardInterrupt.
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        settings = CommonSettings.load()  # read once; the log level is one of them
        setup_logging(settings.log_level, "moodstream")
        return COMMANDS[args.command](args, settings)
    except (UserError, SettingsError, ReportError, SessionNotFound) as exc:
        print(f"moodstream: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ServiceUnavailable, EmbeddedServerError) as exc:
        print(f"moodstream: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ServiceFailed as exc:
        print(f"moodstream: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, Stop):
        print("moodstream: stopped", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main())
