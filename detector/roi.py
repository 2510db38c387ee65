"""Per-camera privacy masks: polygons whose faces are dropped before classification.

Read from the same cameras file as ingest (YAML or TOML, a `cameras` list): each camera's
`roi` is a list of polygons marking EXCLUDED zones (e.g. staff behind a counter). Points
are fractions of the frame (all values <= 1) or frame pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from moodstream.camera_file import read_camera_file
from moodstream.settings import SettingsError


class ExclusionMask:
    def __init__(self, polygons: list[list[tuple[float, float]]]):
        self.polygons = [np.asarray(p, np.float32) for p in polygons]
        self.relative = all(float(np.max(p)) <= 1.0 for p in self.polygons)

    def excludes(self, x: float, y: float, width: int, height: int) -> bool:
        """Whether the point (frame pixels) lies inside or on an excluded polygon."""
        if self.relative:
            x, y = x / max(width, 1), y / max(height, 1)
        return any(cv2.pointPolygonTest(p, (float(x), float(y)), False) >= 0
                   for p in self.polygons)


def load_masks(path: Path) -> dict[str, ExclusionMask]:
    """camera id -> mask, for cameras that have `roi` polygons."""
    data = read_camera_file(path)
    cameras = data.get("cameras")
    if not isinstance(cameras, list):
        raise SettingsError(f"{path}: expected a `cameras` list")
    masks = {}
    for index, camera in enumerate(cameras):
        if not isinstance(camera, dict) or not isinstance(camera.get("id"), str):
            raise SettingsError(f"{path}: cameras[{index}] needs an `id`")
        polygons = camera.get("roi") or []
        if polygons:
            where = f"{path}: cameras[{index}].roi"
            masks[camera["id"]] = ExclusionMask(_check_polygons(polygons, where))
    return masks


def _check_polygons(polygons, where: str) -> list[list[tuple[float, float]]]:
    try:
        checked = [[(float(x), float(y)) for x, y in polygon] for polygon in polygons]
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: each polygon is a list of [x, y] points") from None
    if any(len(polygon) < 3 for polygon in checked):
        raise SettingsError(f"{where}: each polygon needs at least 3 points")
    return checked
