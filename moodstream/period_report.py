"""One camera's report for a calendar day or ISO week: every session of the camera that
started in that period, added up, with a timeline per hour (day) or per day (week).

Sessions come from the session index ({p}:sessions, scored by start time) and each one's
report is moodstream.reports.build_report: its live keys while they last, else the summary
written at close. A session belongs to the period its start falls in (a live camera starts
a new session every hour on the hour, so sessions do not straddle days); the timeline places
each recorded second at its wall time, and seconds past the period's end (a session that ran
over midnight) are in the totals but not on the timeline.

Numbers are sums over sessions: ``people`` adds each session's distinct tracks (a person
seen in two sessions counts twice), ``mean_sentiment`` is the face-weighted mean of the
sessions' means, and a timeline bucket's ``peak_people`` is the most distinct people seen in
one second of it. What a session report hides under the camera's ``min_people``
(moodstream.suppression) stays hidden: a suppressed session or second adds its frames and
faces but nothing to the sentiment and emotions, and ``suppressed_sessions`` counts them.
So every bucket's sentiment comes from seconds that each saw at least ``min_people`` (the
largest floor of the period's sessions); a bucket with faces but none of them rated says
so in its ``suppressed`` note.
"""

from __future__ import annotations

import csv
import io
import json
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis

from moodstream.emotions import EMOTIONS
from moodstream.redis_keys import RedisKeys
from moodstream.reports import ReportError, SessionNotFound, build_report
from moodstream.schemas import valid_id
from moodstream.suppression import suppressed_text

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class UnknownCamera(ReportError):
    """The camera is neither known to Redis nor has a session in the period."""


@dataclass(frozen=True)
class Period:
    kind: str          # "day" or "week"
    label: str         # 2026-11-30 or 2026-W48
    tz: ZoneInfo
    first_day: date
    days: int

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, datetime.min.time(), self.tz)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.first_day + timedelta(days=self.days), datetime.min.time(),
                                self.tz)

    def bucket_starts(self) -> list[float]:
        """Epoch starts of the timeline's buckets: the day's hours (23 or 25 on a DST change)
        or the week's local midnights."""
        start, end = self.start.timestamp(), self.end.timestamp()
        if self.kind == "day":
            return [start + 3600 * k for k in range(round((end - start) / 3600))]
        return [datetime.combine(self.first_day + timedelta(days=k), datetime.min.time(),
                                 self.tz).timestamp() for k in range(self.days)]


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"unknown time zone {name!r}: use an IANA name such as "
                          "UTC or Europe/Berlin") from None


def parse_period(day: str | None = None, week: str | None = None, tz: str = "UTC") -> Period:
    """--day YYYY-MM-DD or --week YYYY-Www (ISO week, Monday first), in time zone tz."""
    zone = time_zone(tz)
    if (day is None) == (week is None):
        raise ReportError("name exactly one period: --day YYYY-MM-DD or --week YYYY-Www")
    if day is not None:
        try:
            if not _DAY.match(day):
                raise ValueError
            return Period("day", day, zone, date.fromisoformat(day), 1)
        except ValueError:
            raise ReportError(f"bad day {day!r}: expected YYYY-MM-DD, e.g. 2026-11-30") from None
    match = _WEEK.match(week)
    try:
        if not match:
            raise ValueError
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise ReportError(f"bad week {week!r}: expected an ISO week YYYY-Www, "
                          "e.g. 2026-W48") from None
    return Period("week", week, zone, monday, 7)


def _camera_of(r: redis.Redis, keys: RedisKeys, session_ids: Sequence[str]) -> dict[str, str]:
    """session -> camera, from the meta hash, else from the summary that outlived it."""
    pipe = r.pipeline(transaction=False)
    for sid in session_ids:
        pipe.hget(keys.meta(sid), "camera_id")
    cameras = dict(zip(session_ids, pipe.execute()))
    orphans = [sid for sid, cam in cameras.items() if not cam]
    if orphans:
        pipe = r.pipeline(transaction=False)
        for sid in orphans:
            pipe.get(keys.summary(sid))
        for sid, summary in zip(orphans, pipe.execute()):
            cameras[sid] = _summary_camera(summary)
    return cameras


def _summary_camera(summary: str | None) -> str:
    try:
        return str(json.loads(summary).get("camera_id") or "") if summary else ""
    except (ValueError, AttributeError):  # a damaged summary belongs to no camera
        return ""


def camera_sessions(r: redis.Redis, keys: RedisKeys, camera_id: str,
                    period: Period) -> list[tuple[str, float]]:
    """(session id, start epoch) of the camera's sessions that started in the period."""
    indexed = r.zrangebyscore(keys.sessions, period.start.timestamp(),
                              f"({period.end.timestamp()}", withscores=True)
    ids = [sid for sid, _ in indexed if valid_id(sid)]
    cameras = _camera_of(r, keys, ids) if ids else {}
    return [(sid, started) for sid, started in indexed if cameras.get(sid) == camera_id]


def build_period_report(r: redis.Redis, keys: RedisKeys, camera_id: str,
                        period: Period) -> dict[str, Any]:
    """The camera's report for the period as a JSON-ready dict; UnknownCamera when Redis
    knows neither the camera nor any session of it in the period."""
    if not valid_id(camera_id):
        raise ReportError(f"invalid camera id {camera_id!r}")
    found = camera_sessions(r, keys, camera_id, period)
    if not found and r.zscore(keys.cameras, camera_id) is None:
        raise UnknownCamera(f"unknown camera {camera_id!r}: no such camera in Redis "
                            f"and no session of it in {period.label}")
    reports = []
    for sid, started in found:
        try:
            reports.append((build_report(r, keys, sid), started))
        except SessionNotFound:  # expired between the index read and now
            continue
    min_people = max((int(rep.get("min_people") or 1) for rep, _ in reports), default=1)
    return {
        "camera_id": camera_id, "period": period.kind, "label": period.label,
        "timezone": period.tz.key, "start": period.start.isoformat(),
        "end": period.end.isoformat(), "min_people": min_people,
        **_totals([rep for rep, _ in reports]),
        "sessions": [_session_row(rep) for rep, _ in reports],
        "timeline": _timeline(reports, period, min_people),
    }


def _totals(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    def total(key: str) -> int:
        return sum(int(rep.get(key) or 0) for rep in reports)
    faces = total("faces_detected")
    emotions = {e: round(sum((rep.get("emotion_totals") or {}).get(e, 0.0) for rep in reports), 4)
                for e in EMOTIONS}
    rated = [rep for rep in reports if rep.get("mean_sentiment") is not None]
    rated_faces = sum(int(rep.get("faces_detected") or 0) for rep in rated)
    weighted = sum(rep["mean_sentiment"] * int(rep.get("faces_detected") or 0) for rep in rated)
    return {
        "session_count": len(reports),
        "frames_processed": total("frames_processed"), "skipped_frames": total("skipped_frames"),
        "frames_with_faces": total("frames_with_faces"), "faces_detected": faces,
        "people": total("people"), "excluded_faces": total("excluded_faces"),
        "emotion_totals": emotions,
        "dominant_emotion": max(emotions, key=emotions.get) if any(emotions.values()) else None,
        "mean_sentiment": round(weighted / rated_faces, 4) if rated_faces else None,
        "suppressed_sessions": sum(1 for rep in reports if rep.get("suppressed")),
        "alerts": [alert for rep in reports for alert in rep.get("alerts") or []],
    }


def _session_row(report: Mapping[str, Any]) -> dict[str, Any]:
    fields = ("session_id", "status", "started_at", "ended_at", "frames_processed",
              "faces_detected", "people", "dominant_emotion", "mean_sentiment", "emotion_totals")
    return {**{f: report.get(f) for f in fields}, "alerts": len(report.get("alerts") or [])}


def _timeline(reports: Sequence[tuple[Mapping[str, Any], float]], period: Period,
              min_people: int = 1) -> list[dict[str, Any]]:
    """Per bucket: frames, faces, peak people, face-weighted sentiment and emotion means."""
    starts = period.bucket_starts()
    end = period.end.timestamp()
    sums = [dict(frames=0, faces=0, rated=0, peak=0, sentiment=0.0, **{e: 0.0 for e in EMOTIONS})
            for _ in starts]
    for report, started in reports:
        for row in report.get("timeline") or []:
            wall = started + row["t"]
            if not starts[0] <= wall < end:
                continue
            acc = sums[bisect_right(starts, wall) - 1]
            faces = int(row.get("faces") or 0)
            acc["frames"] += int(row.get("frames") or 0)
            acc["faces"] += faces
            acc["peak"] = max(acc["peak"], int(row.get("people") or 0))
            if faces and row.get("sentiment") is not None:  # None: no face, or suppressed
                # Per-second means times faces give back that second's sums.
                acc["rated"] += faces
                acc["sentiment"] += row["sentiment"] * faces
                for e in EMOTIONS:
                    acc[e] += (row["emotions"].get(e) or 0.0) * faces
    return [_bucket(start, acc, period.tz, min_people) for start, acc in zip(starts, sums)]


def _bucket(start: float, acc: Mapping[str, float], tz: ZoneInfo,
            min_people: int) -> dict[str, Any]:
    faces, rated = acc["faces"], acc["rated"]
    hidden = {"suppressed": suppressed_text(min_people)} if faces and not rated and \
        min_people > 1 else {}
    return {
        # Local wall time without offset: charts and spreadsheets read it as is; the
        # report's "timezone" says which zone.
        "start": datetime.fromtimestamp(start, tz).replace(tzinfo=None).isoformat(),
        "frames": acc["frames"], "faces": faces, "peak_people": acc["peak"],
        "sentiment": round(acc["sentiment"] / rated, 4) if rated else None,
        "emotions": {e: round(acc[e] / rated, 4) if rated else 0.0 for e in EMOTIONS},
        **hidden,
    }


def period_csv(report: Mapping[str, Any]) -> str:
    """The timeline as CSV: one row per hour (day) or day (week)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["camera_id", "period", "start", "frames", "faces", "peak_people",
                     "sentiment", *EMOTIONS])
    for row in report["timeline"]:
        writer.writerow([report["camera_id"], report["label"], row["start"], row["frames"],
                         row["faces"], row["peak_people"],
                         "" if row["sentiment"] is None else row["sentiment"],
                         *(row["emotions"][e] for e in EMOTIONS)])
    return buf.getvalue()


def render_period(report: Mapping[str, Any], fmt: str) -> str | bytes:
    if fmt == "json":
        return json.dumps(report, indent=2)
    if fmt == "csv":
        return period_csv(report)
    if fmt == "pdf":
        from moodstream.pdf_report import period_pdf  # matplotlib only when needed
        return period_pdf(report)
    from moodstream.html_report import period_html
    return period_html(report)
