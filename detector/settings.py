"""Typed detector settings, built once in main() from env (MOODSTREAM_DETECTOR_*) and CLI."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from moodstream.settings import CommonSettings

DETECTOR_BACKENDS = ("yunet", "haar")


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, f"MOODSTREAM_DETECTOR_{name.upper()}")


class DetectorSettings(CommonSettings):
    model: Path = Field(Path("models/emotion.keras"), validation_alias=_env("model"))
    # Dynamic batching: one inference call per max_batch crops or per max_wait_ms.
    max_batch: int = Field(64, ge=1, le=4096, validation_alias=_env("max_batch"))
    max_wait_ms: float = Field(50.0, ge=0, le=10_000, validation_alias=_env("max_wait_ms"))
    detector: str = Field("yunet", pattern="^(yunet|haar)$", validation_alias=_env("detector"))
    min_face: int = Field(20, ge=1, validation_alias=_env("min_face"))
    confidence: float = Field(0.6, ge=0.0, le=1.0, validation_alias=_env("confidence"))
    # Frames wider than this are shrunk for detection only; crops come from full resolution.
    downscale: int = Field(960, ge=0, validation_alias=_env("downscale"))
    cameras: Path | None = Field(None, validation_alias=_env("cameras"))
    group_id: str = Field("detector", min_length=1, validation_alias=_env("group_id"))
    # EMA weight of the newest frame in a track's smoothed probabilities (1 = no smoothing).
    smoothing_alpha: float = Field(0.4, gt=0.0, le=1.0, validation_alias=_env("smoothing_alpha"))
    track_iou: float = Field(0.3, gt=0.0, lt=1.0, validation_alias=_env("track_iou"))
    track_max_age_s: float = Field(1.5, gt=0.0, validation_alias=_env("track_max_age_s"))
    # Poison-frame limits: bigger JPEGs or decoded frames go to the dead-letter topic.
    max_jpeg_bytes: int = Field(8 * 1024 * 1024, ge=1024, validation_alias=_env("max_jpeg_bytes"))
    max_pixels: int = Field(4096 * 4096, ge=64 * 64, validation_alias=_env("max_pixels"))
    detector_id: str = Field("", validation_alias=_env("detector_id"))
