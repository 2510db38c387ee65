"""The overview's numbers, as pure functions over what DashboardData read (no Redis here):
the KPI tiles and the camera cards.

Customer-sentiment index: the mean of the per-second mean sentiments (sentiment_sum / faces
of each second with faces, in [-1, 1]) of every live camera's current session over the last
INDEX_WINDOW_S (5 minutes), scaled to 0-100: index = 50 * (mean + 1). 50 is neutral, 100
every face fully happy, 0 every face fully angry or disgusted. Each camera-second counts
once, however many faces it had, so a crowded camera does not drown the others. Its change
is the index now minus the same index over the last BASELINE_WINDOW_S (60 minutes) of the
current sessions; a session younger than that contributes what it has (live sessions roll
over hourly, so the previous hour's sessions are not included: hourly rollups will do that).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from dashboard.data import CameraLive, utc
from moodstream.suppression import suppressed_text

INDEX_WINDOW_S = 300
BASELINE_WINDOW_S = 3599  # the trend script reads fewer than MAX_TREND_SECONDS seconds
SPARK_WINDOW_S = 900
FACES_WINDOW_S = 60
LIVE_S = 120  # a camera whose last frame is older is not "in view now"

Point = tuple[Any, float | None, int]  # (UTC time, mean sentiment or None, faces)


@dataclass(frozen=True)
class Kpis:
    index: float | None  # 0-100, None when no face in the window
    index_change: float | None  # index now minus the last hour's index
    people: int  # distinct tracks in view on live cameras
    faces_per_min: int  # faces detected in the last minute, all cameras
    open_alerts: int
    live_cameras: int
    cameras: int


@dataclass(frozen=True)
class CameraCard:
    camera_id: str
    session_id: str | None
    live: bool
    index: float | None  # the camera's own index over INDEX_WINDOW_S
    dominant: str | None
    people: int
    alert: bool
    purpose: str | None
    notice: bool | None
    last_seen: float | None
    spark: list = field(default_factory=list)  # (UTC time, sentiment) over SPARK_WINDOW_S
    suppressed: str | None = None  # why the sentiment is hidden (moodstream.suppression)


def sentiment_index(mean: float | None) -> float | None:
    """Mean sentiment in [-1, 1] -> the 0-100 index (None stays None)."""
    return None if mean is None else round(50.0 * (max(-1.0, min(1.0, mean)) + 1.0), 1)


def recent(points: Sequence[Point], since: Any) -> Sequence[Point]:
    """The points at or after since: a series is in time order, so the cut is found by
    bisection instead of comparing an hour of points (100 cameras: 360,000 a refresh)."""
    return points[bisect.bisect_left(points, since, key=lambda point: point[0]):]


def window_mean(series: Sequence[Sequence[Point]], now: float, window_s: float) -> float | None:
    """Mean of the per-second sentiments of every series in the last window_s seconds."""
    since = utc(now - window_s)
    values = [y for points in series for _x, y, _f in recent(points, since) if y is not None]
    return sum(values) / len(values) if values else None


def _faces(series: Sequence[Sequence[Point]], now: float, window_s: float) -> int:
    since = utc(now - window_s)
    return sum(f for points in series for _x, _y, f in recent(points, since))


def is_live(camera: CameraLive, now: float) -> bool:
    return bool(camera.session_id) and camera.last_seen is not None and \
        now - camera.last_seen <= LIVE_S


def kpis(cameras: Sequence[CameraLive], alerts: Mapping[str, Any],
         series: Mapping[str, Sequence[Point]], now: float) -> Kpis:
    """The four tiles. series: DashboardData.series() over at least BASELINE_WINDOW_S."""
    live = [c for c in cameras if is_live(c, now)]
    current = [series[c.camera_id] for c in live if c.camera_id in series]
    index = sentiment_index(window_mean(current, now, INDEX_WINDOW_S))
    baseline = sentiment_index(window_mean(current, now, BASELINE_WINDOW_S))
    return Kpis(index=index,
                index_change=None if index is None or baseline is None else round(index - baseline, 1),
                people=sum(c.people for c in live), faces_per_min=_faces(current, now, FACES_WINDOW_S),
                open_alerts=len(alerts), live_cameras=len(live), cameras=len(cameras))


def by_relevance(cameras: Sequence[CameraLive], alerts: Mapping[str, Any],
                 now: float) -> list[CameraLive]:
    """Alerting cameras first, then live ones, then the rest, each in the reader's order
    (most recently seen first): the order of the overview's grid."""
    return sorted(cameras, key=lambda cam: (not (cam.camera_id in alerts or cam.alert),
                                            not is_live(cam, now)))


def camera_cards(cameras: Sequence[CameraLive], alerts: Mapping[str, Any],
                 series: Mapping[str, Sequence[Point]], now: float,
                 limit: int | None = None) -> list[CameraCard]:
    """One card per camera, the `limit` most relevant (by_relevance) when given: live ones
    first (in the reader's order, most recent first)."""
    since = utc(now - SPARK_WINDOW_S)
    cards = []
    for cam in by_relevance(cameras, alerts, now)[:limit]:
        points = series.get(cam.camera_id, [])
        live = is_live(cam, now)
        index = sentiment_index(window_mean([points], now, INDEX_WINDOW_S)) if live else None
        # Too few people: the reader already left their seconds' sentiment out.
        hidden = live and cam.min_people > 1 and (
            cam.suppressed or (index is None and _faces([points], now, INDEX_WINDOW_S) > 0))
        cards.append(CameraCard(
            camera_id=cam.camera_id, session_id=cam.session_id, live=live, index=index,
            suppressed=suppressed_text(cam.min_people) if hidden else None,
            dominant=cam.dominant if live else None, people=cam.people if live else 0,
            alert=cam.camera_id in alerts or cam.alert, purpose=cam.purpose, notice=cam.notice,
            last_seen=cam.last_seen, spark=[(x, y) for x, y, _f in recent(points, since)]))
    return cards


def trend_window(series: Mapping[str, Sequence[Point]], cameras: Sequence[CameraLive],
                 now: float, window_s: float) -> dict[str, list]:
    """The overview's trend lines ("camera · session" -> (time, sentiment)) over window_s,
    cut from the hour the reader already holds."""
    since = utc(now - window_s)
    sessions = {c.camera_id: c.session_id for c in cameras}
    out = {}
    for camera, points in series.items():
        kept = [(x, y) for x, y, _f in recent(points, since)]
        if any(y is not None for _x, y in kept):
            out[f"{camera} · {sessions.get(camera)}"] = kept
    return out
