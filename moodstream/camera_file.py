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
