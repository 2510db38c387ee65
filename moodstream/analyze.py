"""`moodstream analyze`: recorded videos and still images through the full distributed path
(ingest -> Kafka -> detector -> Kafka -> aggregator -> Redis), then one report per input.

Each video is one ingest job; each folder of images, and the images named one by one,
one more (moodstream.still_jobs). The detector and the aggregator are shared; the reports
are read from Redis once every session has closed, the stills' boxes from the detections
topic (moodstream.still_reports).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

from moodstream.cli import (UserError, _group, _redis_keys, _session_status, _start_file_ingest,
                            _summary_line, _write, camera_id_for, check_report_path, check_video,
                            new_session_id)
from moodstream.launcher import ServiceFailed, Stack, wait_until
from moodstream.lifecycle import process_age_s
from moodstream.reports import build_report, format_for, report_path_for
from moodstream.settings import CommonSettings

log = logging.getLogger("moodstream")


def _analyze_inputs(args) -> tuple[list[Path], list]:
    """Videos (checked) and still jobs with a readable image; one line per unreadable image."""
    from moodstream.still_jobs import InputError, split_inputs
    try:
        videos, still_jobs = split_inputs([Path(v) for v in args.inputs])
    except InputError as exc:
        raise UserError(str(exc)) from None
    for video in videos:
        check_video(video)
    for path, why in (item for job in still_jobs for item in job.unreadable):
        print(f"moodstream: skipped image {path}: {why}", file=sys.stderr)
    still_jobs = [job for job in still_jobs if job.stills]
    if not videos and not still_jobs:
        raise UserError("nothing to analyse: no image could be read")
    return videos, still_jobs


def _annotate_dir(args) -> Path | None:
    from moodstream.annotate import AnnotateError, check_annotate_dir
    try:
        return check_annotate_dir(args.annotate) if args.annotate else None
    except AnnotateError as exc:
        raise UserError(str(exc)) from None


def analyze(args, settings: CommonSettings) -> int:
    videos, still_jobs = _analyze_inputs(args)
    annotate = _annotate_dir(args)
    report_fmt = format_for(args.report, args.format)
    taken: set[str] = set()
    # (source, camera, session, still job or None); a still job's source is made in the stack
    jobs = [(v, camera_id_for(v, taken), None) for v in videos] + [
        (None, camera_id_for(Path(job.name), taken), job) for job in still_jobs]
    jobs = [(v, cam, new_session_id(cam), still) for v, cam, still in jobs]
    for _v, cam, sid, _still in jobs:
        check_report_path(report_path_for(args.report, sid, cam, len(jobs) > 1))
    log_dir = Path(tempfile.mkdtemp(prefix="moodstream-analyze-"))
    with Stack(settings, log_dir=log_dir) as stack:
        from moodstream.clients import ensure_topics, redis_client
        ensure_topics(stack.settings)
        collector = _still_collector(stack, jobs)
        r = redis_client(stack.settings)
        keys = _redis_keys(stack.settings)
        # One detector and one aggregator on a broker of our own: they read every partition
        # without a group join (~3 s on Tansu), offsets still committed (clients.assign_all).
        assign = [] if settings.kafka_bootstrap_servers else ["--assign", "all"]
        # A finished file may wait on a detector that is still loading its model (slow on
        # a busy machine): missing frames get the whole run's timeout, not a short grace.
        stack.start("aggregator", "--idle-timeout-s", str(args.idle_timeout),
                    "--end-grace-s", str(args.timeout), *_group(stack, "aggregator"), *assign)
        stack.start("detector", *(["--model", args.model] if args.model else []),
                    *_group(stack, "detector"), *assign)
        ingests = [_start_file_ingest(stack, still.link_folder(log_dir / "stills"), cam, sid, 0)
                   if still else _start_file_ingest(stack, video, cam, sid, args.fps)
                   for video, cam, sid, still in jobs]
        _log_first_detection(r, keys, [sid for _v, _c, sid, _s in jobs], args.timeout)
        deadline = time.monotonic() + args.timeout
        while not all(ingest.state == "done" for ingest in ingests):
            stack.supervise()  # restarts a crashed worker; ServiceFailed on a crash loop
            if time.monotonic() > deadline:
                late = next(i.name for i in ingests if i.state != "done")
                raise ServiceFailed(f"{late} did not finish within {args.timeout}s")
            time.sleep(0.2)
        for _v, cam, sid, _still in jobs:
            done = wait_until(lambda: _session_status(r, keys, sid) == "closed",
                              max(5.0, deadline - time.monotonic()), check=stack.supervise)
            if not done:
                raise ServiceFailed(f"session {sid} of {cam} was not closed in time "
                                    f"(logs in {log_dir})")
        for _v, cam, sid, still in jobs:
            path = report_path_for(args.report, sid, cam, len(jobs) > 1)
            report = build_report(r, keys, sid)
            if still is None:
                print(_summary_line(_write(report, path, report_fmt), report))
            else:
                # Several still jobs: a folder each, so same-named images never meet.
                folder = annotate / cam if annotate and len(still_jobs) > 1 else annotate
                _write_stills(report, still, collector, path, report_fmt, folder)
    return 0


def _still_collector(stack: Stack, jobs: list):
    """Reads the still jobs' detections (their boxes) from before any frame is published."""
    from moodstream.still_jobs import DetectionCollector
    session_ids = [sid for _v, _c, sid, still in jobs if still]
    if not session_ids:
        return None
    collector = DetectionCollector(stack.settings, session_ids)
    stack.on_stop(collector.close)
    return collector


def _write_stills(report: dict, job, collector, path: Path, fmt: str,
                  annotate: Path | None) -> None:
    """One entry per image (boxes from the detections), then the annotated copies."""
    from moodstream.annotate import AnnotateError, write_annotated
    from moodstream.still_reports import render_stills, still_report, stills_summary
    expected = report["frames_processed"] + report["skipped_frames"]
    detections = collector.wait_for(report["session_id"], expected, timeout_s=60.0)
    if len(detections) < expected:
        raise ServiceFailed(f"only {len(detections)} of {expected} detections of "
                            f"{report['session_id']} were read back for its image boxes")
    report = still_report(report, job, detections)
    print(stills_summary(_write(report, path, fmt, renderer=render_stills), report))
    if annotate:
        try:
            written = write_annotated(report["images"], annotate)
        except (AnnotateError, OSError) as exc:  # the report is written: say so, then fail
            raise UserError(f"annotated copies not written: {exc}") from None
        print(f"annotated {len(written)} image(s) in {annotate}")


def _log_first_detection(r, keys, session_ids: list[str], timeout_s: float) -> None:
    """Log once when the first frame of any session is applied in Redis (a skipped frame
    counts), timed from this process's start: interpreter start-up and imports included."""
    def watch():
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if any(float(n or 0) > 0 for sid in session_ids
                       for n in r.hmget(keys.totals(sid), "frames", "skipped_frames")):
                    age = process_age_s()
                    if age is not None:
                        log.info("first detection applied in Redis %.2f s after launch", age)
                    return
            except Exception:  # noqa: BLE001 - Redis restarting, or no /proc: only a log line
                pass
            time.sleep(0.02)
    threading.Thread(target=watch, name="first-detection", daemon=True).start()
