"""The camera file (YAML or TOML) that ingest reads for cameras and the detector for ROI masks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from moodstream.settings import SettingsError


def read_camera_file(path: Path) -> dict:
    """The file's top-level table; one-line SettingsError when it can't be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read camera config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"camera config {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                            f"at offset {exc.start}): save it as UTF-8") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise SettingsError(f"camera config {path}: use a .yaml, .yml or .toml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingsError(f"camera config {path} is not valid: {first_line}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"camera config {path}: expected a table at the top level")
    return data


def camera_entries(data: dict, path: Path) -> list[dict]:
    """The file's `cameras` tables, each with a text `id`; one-line SettingsError otherwise."""
    cameras = data.get("cameras")
    if not isinstance(cameras, list):
        raise SettingsError(f"{path}: expected a `cameras` list")
    for index, camera in enumerate(cameras):
        if not isinstance(camera, dict) or not isinstance(camera.get("id"), str):
            raise SettingsError(f"{path}: cameras[{index}] needs an `id`")
    return cameras


def roi_polygons(polygons, where: str) -> list[list[tuple[float, float]]]:
    """A camera's `roi`: polygons of [x, y] points marking EXCLUDED zones (staff areas)."""
    try:
        checked = [[(float(x), float(y)) for x, y in polygon] for polygon in polygons]
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: each polygon is a list of [x, y] points") from None
    if any(len(polygon) < 3 for polygon in checked):
        raise SettingsError(f"{where}: each polygon needs at least 3 points")
    return checked


def roi_is_relative(polygons: list[list[tuple[float, float]]]) -> bool:
    """Points are fractions of the frame when every value is <= 1, else pixels of the
    frame the detector sees (after ingest's max_width downscale)."""
    return all(max(max(x, y) for x, y in polygon) <= 1.0 for polygon in polygons)
