"""Session reports, built from the Redis data model; shared by the CLI and the dashboard.

A report holds only aggregated numbers: no images, no per-face records.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import redis

from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS
from moodstream.redis_keys import RedisKeys, parse_buckets
from moodstream.schemas import valid_id
from moodstream.suppression import apply_min_people, min_people_of

REPORT_FORMATS = ("json", "csv", "html", "pdf")


class SessionNotFound(LookupError):
    pass


class ReportError(ValueError):
    pass


def _iso(ts: str | float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC; None when absent or not a representable time."""
    if ts in (None, ""):
        return None
    try:
        moment = datetime.fromtimestamp(float(ts), tz=timezone.utc)
    except (ValueError, OverflowError, OSError):  # NaN, +-1e20, beyond year 9999
        return None
    return moment.isoformat(timespec="milliseconds")


def _timeline(buckets: dict[int, dict[str, float]], tracks: dict[str, str]) -> list[dict[str, Any]]:
    """One entry per second that has a bucket, ascending.

    Only seconds with data: a report's size follows what was recorded, never the numeric
    range of offset_s (one frame at offset 2e5 once made a 37 MB summary). A second
    without frames (a gap in a live stream) has no entry."""
    return [timeline_entry(t, b, tracks.get(str(t))) for t, b in sorted(buckets.items())]


def timeline_entry(t: int, bucket: Mapping[str, float], people: str | int | None) -> dict[str, Any]:
    """A report's entry for second t from its bucket (parse_buckets) and its distinct people
    (bucket_tracks); the dashboard's incremental reader builds the same entries."""
    faces = int(bucket.get("faces", 0))
    return {
        "t": t,
        "frames": int(bucket.get("frames", 0)),
        "faces": faces,
        "people": int(people or 0),
        "sentiment": round(bucket.get("sentiment_sum", 0.0) / faces, 4) if faces else None,
        "emotions": {e: round(bucket.get(f"p:{e}", 0.0) / faces, 4) if faces else 0.0
                     for e in EMOTIONS},
    }


def build_report(r: redis.Redis, keys: RedisKeys, session_id: str,
                 valence: Mapping[str, float] = DEFAULT_VALENCE) -> dict[str, Any]:
    """The full session report (summary + per-second timeline) as a JSON-ready dict."""
    if not valid_id(session_id):
        raise ReportError(f"invalid session id {session_id!r}")
    # One round trip: the session's keys share one hash tag, so on a Redis Cluster they
    # are all on one node.
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.meta(session_id))
    pipe.hgetall(keys.totals(session_id))
    pipe.hgetall(keys.buckets(session_id))
    pipe.hgetall(keys.bucket_tracks(session_id))
    pipe.lrange(keys.alerts(session_id), 0, -1)
    pipe.scard(keys.tracks(session_id))
    meta, raw_totals, raw_buckets, bucket_tracks, raw_alerts, people = pipe.execute()
    if not meta:
        summary = r.get(keys.summary(session_id))
        if summary:  # buckets expired, the summary outlived them
            return json.loads(summary)
        raise SessionNotFound(f"no session {session_id!r} in Redis")
    return assemble_report(session_id, meta, raw_totals, raw_alerts, people,
                           _timeline(parse_buckets(raw_buckets), bucket_tracks), valence)


def assemble_report(session_id: str, meta: Mapping[str, str], raw_totals: Mapping[str, str],
                    raw_alerts: list[str], people: int, timeline: list[dict[str, Any]],
                    valence: Mapping[str, float] = DEFAULT_VALENCE) -> dict[str, Any]:
    """The report of a session from its meta, totals, alerts list, distinct people and
    timeline entries (timeline_entry, ascending), as read from Redis."""
    totals = {k: float(v) for k, v in raw_totals.items()}
    faces = int(totals.get("faces", 0))
    emotion_totals = {e: round(totals.get(f"p:{e}", 0.0), 4) for e in EMOTIONS}
    alerts = [json.loads(a) for a in raw_alerts]
    # Sentiment of fewer distinct people than the camera's min_people is not exported.
    return apply_min_people({
        "session_id": session_id,
        "camera_id": meta.get("camera_id"),
        "source": meta.get("source", ""),
        "status": meta.get("status", "open"),
        "started_at": _iso(meta.get("started_at")),
        "ended_at": _iso(meta.get("ended_at") or meta.get("last_seen")),
        "duration_s": timeline[-1]["t"] + 1 if timeline else 0,
        "frames_processed": int(totals.get("frames", 0)),
        # Frames the detector dead-lettered (corrupt, oversized, ...): handled, not analysed.
        "skipped_frames": int(totals.get("skipped_frames", 0)),
        "frames_with_faces": int(totals.get("frames_with_faces", 0)),
        "faces_detected": faces,
        "people": people,
        "excluded_faces": int(totals.get("excluded_faces", 0)),
        "emotion_totals": emotion_totals,
        "dominant_emotion": max(emotion_totals, key=emotion_totals.get) if faces else None,
        "mean_sentiment": round(totals.get("sentiment_sum", 0.0) / faces, 4) if faces else None,
        # The weights the aggregator summed with (recorded in meta), else the caller's.
        "valence_weights": json.loads(meta["valence"]) if meta.get("valence") else dict(valence),
        "alerts": alerts,
        "timeline": timeline,
    }, min_people_of(meta))


def report_csv(report: Mapping[str, Any]) -> str:
    """The timeline as CSV: one row per second."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["session_id", "camera_id", "t", "frames", "faces", "people", "sentiment",
                     *EMOTIONS])
    for row in report["timeline"]:
        writer.writerow([report["session_id"], report["camera_id"], row["t"], row["frames"],
                         row["faces"], row["people"],
                         "" if row["sentiment"] is None else row["sentiment"],
                         *(row["emotions"][e] for e in EMOTIONS)])
    return buf.getvalue()


def format_for(path: str | Path, explicit: str | None = None) -> str:
    fmt = (explicit or Path(path).suffix.lstrip(".")).lower()
    if fmt not in REPORT_FORMATS:
        raise ReportError(f"unknown report format {fmt!r} for {path}: use .json, .csv, .html or .pdf")
    return fmt


def render(report: Mapping[str, Any], fmt: str) -> str | bytes:
    if fmt == "json":
        return json.dumps(report, indent=2)
    if fmt == "csv":
        return report_csv(report)
    if fmt == "pdf":
        from moodstream.pdf_report import report_pdf  # matplotlib only when needed
        return report_pdf(report)
    from moodstream.html_report import report_html  # plotly only when needed
    return report_html(report)


def write_output(path: str | Path, content: str | bytes) -> Path:
    """A rendered report to its file (PDF is bytes, the other formats text)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def write_report(report: Mapping[str, Any], path: str | Path, fmt: str | None = None) -> Path:
    return write_output(path, render(report, format_for(path, fmt)))


def report_path_for(base: str | Path, session_id: str, camera_id: str, many: bool) -> Path:
    """`--report r.json` for one video is r.json; for several, r-<camera>.json each."""
    base = Path(base)
    if not many:
        return base
    return base.with_name(f"{base.stem}-{camera_id}{base.suffix}")
