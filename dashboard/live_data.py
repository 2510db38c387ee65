"""The live pages' reads: each camera's live state, open alerts, and the per-second
sentiment series of the cameras' current sessions (TREND_SCRIPT, with the settled seconds
kept between ticks: dashboard.settled_seconds). A mixin of dashboard.data.DashboardData,
which provides client, keys, clock, cache_s, shared(), _settled and _trend_script."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dashboard.redis_values import _float, _guarded, _int, _timestamp, utc
from dashboard.sessions_data import SessionRow
from moodstream.clients import run_pipeline, script_call
from moodstream.emotions import EMOTIONS
from moodstream.schemas import MAX_OFFSET_S, valid_id
from moodstream.suppression import min_people_of

# The longest trend the page asks for (layout.TREND_WINDOWS), with room to spare: the
# script refuses a longer span, so no value in Redis can make it loop for long.
MAX_TREND_SECONDS = 3600

# Read-only: mean sentiment and faces of each second t in [ARGV[1], ARGV[2]] of one buckets
# hash, packed as "0.1234:2,,-0.5:3" ("" = a second without faces). The loop's range comes from
# Redis data (a camera's last offset_s), so it is checked first: whole numbers in
# [0, ARGV[4]] at most ARGV[3] seconds apart (a double as large as 1e17 would otherwise
# never step past itself: t + 1 == t, an endless loop that blocks Redis). Anything else
# returns "". A second with fewer distinct people (KEYS[2], bucket_tracks) than ARGV[5]
# (min_people, moodstream.suppression) keeps its faces but not its sentiment: ":2".
TREND_SCRIPT = """
local lo, hi = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_span, max_t = tonumber(ARGV[3]), tonumber(ARGV[4])
local min_people = tonumber(ARGV[5]) or 1
if not (lo and hi and lo >= 0 and hi <= max_t and hi >= lo and hi - lo < max_span
        and math.floor(lo) == lo and math.floor(hi) == hi) then
  return ''
end
local out = {}
for t = lo, hi do
  local v = redis.call('HMGET', KEYS[1], t .. '|faces', t .. '|sentiment_sum')
  local faces, total = tonumber(v[1]), tonumber(v[2])
  local people = min_people > 1 and (tonumber(redis.call('HGET', KEYS[2], tostring(t))) or 0)
  if faces and faces > 0 and people and people < min_people then
    out[#out + 1] = string.format(':%d', faces)
  elseif faces and faces > 0 and total then
    out[#out + 1] = string.format('%.4f:%d', total / faces, faces)
  else
    out[#out + 1] = ''
  end
end
return table.concat(out, ',')
"""


@dataclass(frozen=True)
class CameraLive:
    camera_id: str
    session_id: str | None
    last_seen: float | None
    sentiment: float | None
    faces: int
    people: int
    dominant: str | None
    probs: dict[str, float] = field(default_factory=dict)
    alert: bool = False
    status: str = ""
    offset_s: float | None = None  # session time of the last applied frame
    # From the camera file (privacy): why the camera is analysed, and whether people are
    # told. None until ingest/the aggregator write them to the live hash.
    purpose: str | None = None
    notice: bool | None = None
    # moodstream.suppression: sentiment of fewer people than this is not shown (1 = off)
    min_people: int = 1

    @property
    def suppressed(self) -> bool:
        """Fewer faces in view now than min_people: the live sentiment is hidden."""
        return self.min_people > 1 and self.faces < self.min_people


@dataclass(frozen=True)
class LiveSnapshot:
    """What the live pages show, read once per refresh interval for every viewer."""

    now: float
    cameras: list[CameraLive]
    alerts: dict[str, dict[str, Any]]
    series: dict[str, list]  # camera id -> (UTC time, sentiment, faces), last LIVE_SERIES_S
    active: list[SessionRow]


LIVE_SERIES_S = 3599  # an hour of seconds: the KPI baseline; sparklines and trends cut it


class LiveReads:
    """Cameras, open alerts and per-second series (mixed into DashboardData)."""

    @_guarded
    def camera_ids(self) -> list[str]:
        return [c for c in self.client.zrevrange(self.keys.cameras, 0, -1) if valid_id(c)]

    @_guarded
    def cameras(self) -> list[CameraLive]:
        """Live state of every known camera, most recently seen first."""
        ids = self.camera_ids()
        pipe = self.client.pipeline(transaction=False)
        for camera_id in ids:
            pipe.hgetall(self.keys.camera_live(camera_id))
        return [_camera_live(c, raw) for c, raw in zip(ids, pipe.execute())]

    @_guarded
    def open_alerts(self) -> dict[str, dict[str, Any]]:
        alerts = {}
        for camera_id, raw in self.client.hgetall(self.keys.open_alerts).items():
            try:
                alerts[camera_id] = json.loads(raw)
            except json.JSONDecodeError:
                alerts[camera_id] = {"message": "alert (unreadable record)"}
        return alerts

    @_guarded
    def series(self, cameras: list[CameraLive], window_s: float) -> dict[str, list]:
        """Per-second (UTC time, mean sentiment, faces) of each camera's current session
        over the last window_s, by camera id; a second without faces is (t, None, 0).

        Reads only the window's seconds, and Redis itself divides sentiment_sum by faces
        (TREND_SCRIPT): one short string per camera instead of two fields per second. The
        shared reader (cache_s > 0) also keeps the settled seconds between ticks and reads
        only the rest (dashboard.settled_seconds).
        """
        now = self.clock()
        live = [c for c in cameras if c.session_id and
                (c.last_seen is None or c.last_seen >= now - window_s)]  # silent: left out
        pipe = self.client.pipeline(transaction=False)
        for cam in live:
            pipe.hget(self.keys.meta(cam.session_id), "started_at")
        plans = []
        for cam, started in zip(live, pipe.execute()):
            span = _window_seconds(cam, _timestamp(started), now, window_s)
            if span:
                key = (cam.session_id, _timestamp(started), cam.min_people)
                first = self._settled.first_unread(cam.camera_id, key, span) \
                    if self.cache_s > 0 else span.start
                plans.append((cam, _timestamp(started), span, key, range(first, span.stop)))
        trends = run_pipeline(self.client, [
            script_call(self._trend_script, [self.keys.buckets(cam.session_id),
                                             self.keys.bucket_tracks(cam.session_id)],
                        [read.start, read.stop - 1, MAX_TREND_SECONDS, int(MAX_OFFSET_S),
                         cam.min_people])
            for cam, _started, _span, _key, read in plans])
        out = {}
        for (cam, started, span, key, read), packed in zip(plans, trends):
            items = _points(started, read, packed.split(","))
            if self.cache_s > 0:
                items = self._settled.merge(cam.camera_id, key, span, items)
            points = [point for t, point in items if started + t >= now - window_s]
            if any(y is not None for _, y, _f in points):
                out[cam.camera_id] = points
        if self.cache_s > 0:
            self._settled.retain(cam.camera_id for cam, *_rest in plans)
        return out

    def trend(self, cameras: list[CameraLive], window_s: float) -> dict[str, list]:
        """(UTC time, sentiment) per second of each camera's current session in the window,
        labelled "camera · session" (the overview's trend lines)."""
        sessions = {c.camera_id: c.session_id for c in cameras}
        return {f"{camera} · {sessions[camera]}": [(x, y) for x, y, _f in points]
                for camera, points in self.series(cameras, window_s).items()}

    def shared_camera_ids(self) -> list[str]:
        """camera_ids() read once per tick for every viewer (the sessions page's menu)."""
        return self.shared("camera-ids", self.camera_ids)


def _camera_live(camera_id: str, raw: dict[str, str]) -> CameraLive:
    probs = {e: _float(raw.get(f"p:{e}")) or 0.0 for e in EMOTIONS}
    session_id = raw.get("session_id") or None
    min_people, faces = min_people_of(raw), _int(raw.get("faces"))
    if min_people > 1 and faces < min_people:  # too few in view: no live mood to show
        raw = {k: v for k, v in raw.items() if k not in ("sentiment", "dominant")}
        probs = {e: 0.0 for e in EMOTIONS}
    return CameraLive(
        camera_id=camera_id, session_id=session_id if session_id and valid_id(session_id) else None,
        last_seen=_timestamp(raw.get("last_seen")), sentiment=_float(raw.get("sentiment")),
        faces=_int(raw.get("faces")), people=_int(raw.get("people")),
        dominant=raw.get("dominant") or None, probs=probs,
        alert=raw.get("alert") == "open", status=raw.get("status", ""),
        offset_s=_float(raw.get("offset_s")), purpose=(raw.get("purpose") or "").strip() or None,
        notice={"1": True, "true": True, "0": False, "false": False}.get(
            str(raw.get("notice", "")).lower()), min_people=min_people)



def _window_seconds(cam: CameraLive, started: float | None, now: float,
                    window_s: float) -> range | None:
    """Bucket seconds t of the camera's session inside the window (t = started + offset).

    The last applied offset bounds the span from above: a recorded file may run ahead of the
    wall clock, a lagging pipeline behind it.
    """
    if started is None:
        return None
    t_hi = int(cam.offset_s) if cam.offset_s is not None else int(now - started)
    t_lo = max(0, int(now - window_s - started), t_hi - int(window_s))
    if not 0 <= t_hi <= MAX_OFFSET_S or t_hi - t_lo >= MAX_TREND_SECONDS:
        return None  # not a session second the aggregator accepts, or a window too long
    return range(t_lo, t_hi + 1) if t_hi >= t_lo else None


def _points(started: float, span: range, packed: list[str]) -> list:
    """(t, (UTC time, sentiment, faces)) per second t of span; a second without faces is
    (time, None, 0): a gap, not a zero."""
    first = utc(started)
    out = []
    for t, value in zip(span, packed):
        sentiment, _, faces = value.partition(":")
        out.append((t, (first + timedelta(seconds=t), float(sentiment) if sentiment else None,
                        int(faces) if faces else 0)))
    return out

