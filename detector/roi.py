"""Per-camera privacy masks: polygons whose faces are dropped before classification.

Read from the same cameras file as ingest (YAML or TOML, a `cameras` list): each camera's
`roi` is a list of polygons marking EXCLUDED zones (e.g. staff behind a counter). Points
are fractions of the frame (all values <= 1) or frame pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from moodstream.camera_file import camera_entries, read_camera_file, roi_is_relative, roi_polygons


class ExclusionMask:
    def __init__(self, polygons: list[list[tuple[float, float]]]):
        self.polygons = [np.asarray(p, np.float32) for p in polygons]
        self.relative = roi_is_relative(polygons)

    def excludes(self, x: float, y: float, width: int, height: int) -> bool:
        """Whether the point (frame pixels) lies inside or on an excluded polygon."""
        if self.relative:
            x, y = x / max(width, 1), y / max(height, 1)
        return any(cv2.pointPolygonTest(p, (float(x), float(y)), False) >= 0
                   for p in self.polygons)


def load_masks(path: Path) -> dict[str, ExclusionMask]:
    """camera id -> mask, for cameras that have `roi` polygons."""
    masks = {}
    for index, camera in enumerate(camera_entries(read_camera_file(path), path)):
        polygons = camera.get("roi") or []
        if polygons:
            where = f"{path}: cameras[{index}].roi"
            masks[camera["id"]] = ExclusionMask(roi_polygons(polygons, where))
    return masks
