"""Per-camera face tracks (greedy IoU matching with a centre-distance fallback) and
per-track EMA smoothing of emotions.

A camera's tracks reset when its session changes, so track ids count the distinct
people of one session.

Track ids are unique across detector processes (TrackIds): after a rebalance or a restart
another process continues a camera's session, and ids that restarted at 1 there would
merge different people into one and under-count. The cost runs the other way: a person in
view across a rebalance gets a second id and is counted twice, which a restart cannot avoid
without shared tracker state.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

import numpy as np

from detector.faces import FaceBox
from detector.percamera import PerCamera


def iou(a: FaceBox, b: FaceBox) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def affinity(track: FaceBox, box: FaceBox, min_iou: float, max_shift: float) -> float:
    """IoU when it is at least min_iou; else, for a similar-sized box whose centre moved
    under max_shift face sizes, a value below min_iou (so overlaps win); else 0.

    The fallback keeps fast movers on one track: on crowd_walk a face moving ~26 px per
    frame at 60 px wide overlapped its previous box by IoU 0.29 and would have been
    counted as a new person.
    """
    overlap = iou(track, box)
    if overlap >= min_iou:
        return overlap
    area_ratio = (box.w * box.h) / max(1, track.w * track.h)
    if not 0.5 <= area_ratio <= 2.0:
        return 0.0
    (tx, ty), (bx, by) = track.centre, box.centre
    size = (track.w + track.h + box.w + box.h) / 4
    shift = math.hypot(bx - tx, by - ty) / (max_shift * size)
    return min_iou * 0.99 * (1.0 - shift) if shift < 1.0 else 0.0


class TrackIds:
    """Ids unique across processes: a random 31-bit instance prefix above a 22-bit counter.

    53 bits in all, so an id is an exact integer in JSON for any reader (JavaScript's
    doubles included). The prefix is drawn from the OS's random source in every process
    (never 0, so no id is a small integer as older detectors made), and drawn again when
    the counter runs out after ~4 million tracks. Two processes share a prefix with
    probability 2**-31.
    """

    PREFIX_BITS, COUNTER_BITS = 31, 22

    def __init__(self, counter_bits: int = COUNTER_BITS):
        self.counter_bits = counter_bits
        self.prefix, self.counter = self._draw_prefix(), 0

    def _draw_prefix(self) -> int:
        return 1 + secrets.randbelow((1 << self.PREFIX_BITS) - 1)

    def next(self) -> int:
        if self.counter >= 1 << self.counter_bits:
            self.prefix, self.counter = self._draw_prefix(), 0
        track_id = (self.prefix << self.counter_bits) | self.counter
        self.counter += 1
        return track_id


@dataclass
class Track:
    track_id: int
    box: FaceBox
    last_ts: float
    smoothed: np.ndarray | None = None
    velocity: tuple[float, float] = (0.0, 0.0)  # centre px/s, smoothed

    def predicted(self, ts: float) -> FaceBox:
        """Where the face should be at ts if it keeps moving as it did (constant velocity)."""
        dt = max(0.0, ts - self.last_ts)
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        b = self.box
        return FaceBox(int(round(b.x + dx)), int(round(b.y + dy)), b.w, b.h, b.score)

    def update(self, box: FaceBox, ts: float) -> None:
        dt = ts - self.last_ts
        if dt > 0:
            (ox, oy), (nx, ny) = self.box.centre, box.centre
            vx, vy = (nx - ox) / dt, (ny - oy) / dt
            self.velocity = (0.5 * self.velocity[0] + 0.5 * vx, 0.5 * self.velocity[1] + 0.5 * vy)
        self.box, self.last_ts = box, max(ts, self.last_ts)

    def smooth(self, probs: np.ndarray, alpha: float) -> np.ndarray:
        self.smoothed = probs.copy() if self.smoothed is None else (
            alpha * probs + (1.0 - alpha) * self.smoothed)
        return self.smoothed


@dataclass
class CameraTracker:
    min_iou: float = 0.3
    max_age_s: float = 1.5  # a track unseen this long is closed
    max_shift: float = 1.0  # centre move per frame, in face sizes, for the fallback match
    session_id: str = ""
    tracks: list[Track] = field(default_factory=list)
    ids: TrackIds = field(default_factory=TrackIds)

    def assign(self, session_id: str, ts: float, boxes: list[FaceBox]) -> list[Track]:
        """The track of each box (same order); unmatched boxes open new tracks."""
        if session_id != self.session_id:
            self.session_id, self.tracks = session_id, []
        self.tracks = [t for t in self.tracks if ts - t.last_ts <= self.max_age_s]
        pairs = sorted(((affinity(t.predicted(ts), b, self.min_iou, self.max_shift), ti, bi)
                        for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
                       reverse=True)
        matched: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for score, ti, bi in pairs:
            if score <= 0.0:
                break
            if ti in used_tracks or bi in matched:
                continue
            used_tracks.add(ti)
            matched[bi] = self.tracks[ti]
        result = []
        for bi, box in enumerate(boxes):
            track = matched.get(bi)
            if track is None:
                track = Track(self.ids.next(), box, ts)
                self.tracks.append(track)
            else:
                track.update(box, ts)
            result.append(track)
        return result


class Trackers:
    """One CameraTracker per camera, created on first sight, all drawing from one TrackIds."""

    def __init__(self, min_iou: float = 0.3, max_age_s: float = 1.5, alpha: float = 0.4,
                 ids: TrackIds | None = None):
        self.min_iou, self.max_age_s, self.alpha = min_iou, max_age_s, alpha
        self.ids = ids or TrackIds()
        self._cameras: PerCamera[CameraTracker] = PerCamera(
            lambda: CameraTracker(self.min_iou, self.max_age_s, ids=self.ids))

    def for_camera(self, camera_id: str) -> CameraTracker:
        return self._cameras.get(camera_id)

    def fresh(self) -> CameraTracker:
        """A tracker with no tracks (for a still image), drawing from the same ids."""
        return CameraTracker(self.min_iou, self.max_age_s, ids=self.ids)
