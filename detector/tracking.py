"""Per-camera face tracks (greedy IoU matching) and per-track EMA smoothing of emotions.

A camera's tracks reset when its session changes, so track ids count the distinct
people of one session. Ids are unique per camera for the life of the process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.faces import FaceBox


def iou(a: FaceBox, b: FaceBox) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    box: FaceBox
    last_ts: float
    smoothed: np.ndarray | None = None

    def smooth(self, probs: np.ndarray, alpha: float) -> np.ndarray:
        self.smoothed = probs.copy() if self.smoothed is None else (
            alpha * probs + (1.0 - alpha) * self.smoothed)
        return self.smoothed


@dataclass
class CameraTracker:
    min_iou: float = 0.3
    max_age_s: float = 1.5  # a track unseen this long is closed
    session_id: str = ""
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def assign(self, session_id: str, ts: float, boxes: list[FaceBox]) -> list[Track]:
        """The track of each box (same order); unmatched boxes open new tracks."""
        if session_id != self.session_id:
            self.session_id, self.tracks = session_id, []
        self.tracks = [t for t in self.tracks if ts - t.last_ts <= self.max_age_s]
        pairs = sorted(((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks)
                        for bi, b in enumerate(boxes)), reverse=True)
        matched: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.min_iou:
                break
            if ti in used_tracks or bi in matched:
                continue
            used_tracks.add(ti)
            matched[bi] = self.tracks[ti]
        result = []
        for bi, box in enumerate(boxes):
            track = matched.get(bi)
            if track is None:
                track = Track(self.next_id, box, ts)
                self.next_id += 1
                self.tracks.append(track)
            track.box, track.last_ts = box, max(ts, track.last_ts)
            result.append(track)
        return result


class Trackers:
    """One CameraTracker per camera, created on first sight."""

    def __init__(self, min_iou: float = 0.3, max_age_s: float = 1.5, alpha: float = 0.4):
        self.min_iou, self.max_age_s, self.alpha = min_iou, max_age_s, alpha
        self._cameras: dict[str, CameraTracker] = {}

    def for_camera(self, camera_id: str) -> CameraTracker:
        tracker = self._cameras.get(camera_id)
        if tracker is None:
            tracker = self._cameras[camera_id] = CameraTracker(self.min_iou, self.max_age_s)
        return tracker
