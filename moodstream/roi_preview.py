"""`moodstream roi-preview CAMERA_FILE --camera C`: one frame of the camera with its ROI
exclusion zones drawn, written to a local image, so an operator can check that every
staff area (where employees work) is masked before the camera is analysed.

The frame is shown as the detector sees it: downscaled to the camera's `max_width`, the
space in which pixel ROI points are meant. A face whose centre lies in a zone is dropped
before classification. The image shows whoever is in view: it is written only here, to
the path asked for, and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from moodstream.camera_file import camera_entries, read_camera_file, roi_is_relative, roi_polygons
from moodstream.settings import redact
from moodstream.stills import StillError, read_still, still_paths, is_still_source

DEFAULT_MAX_WIDTH = 1280  # ingest's default (ingest.config)
OPEN_TIMEOUT_MS = 10_000
ZONE_BGR = (0, 0, 230)


class PreviewError(ValueError):
    """Why there is no preview: one line for the user."""


@dataclass(frozen=True)
class CameraZones:
    camera_id: str
    url: str
    max_width: int
    polygons: list[list[tuple[float, float]]]


def camera_zones(path: Path, camera_id: str) -> CameraZones:
    """The camera's source, frame width and ROI polygons from the camera file."""
    data = read_camera_file(path)
    cameras = camera_entries(data, path)
    index = next((i for i, c in enumerate(cameras) if c["id"] == camera_id), None)
    if index is None:
        known = ", ".join(c["id"] for c in cameras) or "none"
        raise PreviewError(f"no camera {camera_id!r} in {path} (cameras: {known})")
    camera, defaults = cameras[index], data.get("defaults") or {}
    url = camera.get("url")
    if url is None or str(url) == "":
        raise PreviewError(f"{path}: cameras[{index}] ({camera_id}) has no `url`")
    max_width = camera.get("max_width", defaults.get("max_width", DEFAULT_MAX_WIDTH))
    polygons = roi_polygons(camera.get("roi") or [], f"{path}: cameras[{index}].roi")
    return CameraZones(camera_id, str(url), int(max_width), polygons)


def grab_frame(url: str, seek_s: float = 0.0) -> np.ndarray:
    """One frame of the source: a video at `seek_s`, the first image of a still source,
    the next frame of a live camera."""
    if is_still_source(url):
        images = still_paths(url)
        try:
            return read_still(images[0]) if images else _fail(url, "no image")
        except StillError as exc:
            raise PreviewError(f"cannot read {url}: {exc}") from None
    _quiet_ffmpeg()
    if url.isdigit():
        capture = cv2.VideoCapture(int(url))
    elif "://" in url:
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS])
    elif not Path(url).is_file():
        _fail(url, "file not found")
    else:
        capture = cv2.VideoCapture(url)
    try:
        if seek_s > 0:
            capture.set(cv2.CAP_PROP_POS_MSEC, seek_s * 1000.0)
        ok, frame = capture.read() if capture.isOpened() else (False, None)
    finally:
        capture.release()
    if not ok or frame is None:
        _fail(url, "no frame could be read")
    return frame


def _quiet_ffmpeg() -> None:
    # FFmpeg and OpenCV print their own lines for a refused stream; the error says it once.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.setLogLevel(0)


def _fail(url: str, why: str):
    raise PreviewError(f"cannot grab a frame from {redact(url)}: {why}")


def as_detector_sees(frame: np.ndarray, max_width: int) -> np.ndarray:
    height, width = frame.shape[:2]
    if width <= max_width:
        return frame
    return cv2.resize(frame, (max_width, max(1, round(height * max_width / width))),
                      interpolation=cv2.INTER_LINEAR)


def draw_zones(frame: np.ndarray, polygons: list[list[tuple[float, float]]]) -> tuple[np.ndarray, float]:
    """The frame with each zone filled (translucent), outlined and numbered; and the share
    of the frame the zones cover."""
    height, width = frame.shape[:2]
    scale = (width, height) if roi_is_relative(polygons) else (1.0, 1.0)
    points = [np.round(np.asarray(p, np.float64) * scale).astype(np.int32) for p in polygons]
    mask = np.zeros((height, width), np.uint8)
    for pts in points:
        cv2.fillPoly(mask, [pts], 255)
    out = frame.copy()
    tinted = out.copy()
    tinted[mask > 0] = ZONE_BGR
    out = cv2.addWeighted(tinted, 0.35, out, 0.65, 0)
    thick = max(2, round(width / 500))
    for number, pts in enumerate(points, 1):
        cv2.polylines(out, [pts], True, ZONE_BGR, thick, cv2.LINE_AA)
        x, y = pts.min(axis=0)
        cv2.putText(out, f"excluded {number}", (int(x) + 6, int(y) + 24), cv2.FONT_HERSHEY_SIMPLEX,
                    0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return out, float(np.count_nonzero(mask)) / mask.size


def write_preview(camera_file: Path, camera_id: str, out: Path, seek_s: float = 0.0) -> str:
    """Write the preview; returns the one line to print about it."""
    if "://" in str(out):
        raise PreviewError(f"--out takes a local file, not a URL: {out}")
    zones = camera_zones(camera_file, camera_id)
    frame = as_detector_sees(grab_frame(zones.url, seek_s), zones.max_width)
    drawn, covered = draw_zones(frame, zones.polygons)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = cv2.imwrite(str(out), drawn)
    except cv2.error:
        written = False
    if not written:
        raise PreviewError(f"cannot write {out}: use a .png or .jpg path in a writable folder")
    height, width = drawn.shape[:2]
    if not zones.polygons:
        return (f"wrote {out} ({width}x{height}): camera {camera_id} has NO exclusion zone: "
                f"every face in view is analysed")
    return (f"wrote {out} ({width}x{height}): {len(zones.polygons)} exclusion zone(s) of camera "
            f"{camera_id} cover {covered:.0%} of the frame; check every staff area is inside one")
