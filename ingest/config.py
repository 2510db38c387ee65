"""Typed ingest settings and the per-camera configuration (CLI camera or YAML/TOML file)."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from moodstream.schemas import MAX_PURPOSE_CHARS, printable_line, valid_id
from moodstream.camera_file import read_camera_file
from moodstream.settings import ServiceSettings, SettingsError, service_config
from moodstream.stills import is_still_source


class PacingMode(str, Enum):
    """How a video file is replayed: at its own speed, or as fast as the pipeline takes it."""

    REALTIME = "realtime"
    FAST = "fast"


HOURLY_S = 3600.0
# The purpose of a camera given by --source, when MOODSTREAM_INGEST_PURPOSE does not say:
# a recording or a photo is analysed for the one who asked; a live camera must say why.
FILE_PURPOSE, STILLS_PURPOSE = "recorded video analysis", "still image analysis"
PURPOSE_EXAMPLE = 'e.g. purpose: "customer sentiment, store entrance"'


class SessionPolicy(BaseModel):
    """When a camera's session changes. An explicit id never rolls over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = None
    gap_s: float = Field(30.0, gt=0)  # no frame for longer than this -> new session
    # Live sources only (a file is one session): a new session on a wall-clock aligned
    # schedule, hourly by default, so a camera that never stops still gets bounded sessions.
    # 0 (or null) = never.
    every_s: float = Field(HOURLY_S, ge=0)

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value):
        if value is not None and not valid_id(value):
            raise ValueError("use letters, digits, _ . : - (max 128)")
        return value

    @field_validator("every_s", mode="before")
    @classmethod
    def _null_means_never(cls, value):
        return 0.0 if value is None else value


class CameraConfig(BaseModel):
    """One camera (or video file) as ingest runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    url: str = Field(min_length=1)  # file path, rtsp/http(s) URL, or webcam index
    fps: float = Field(5.0, ge=0)  # 0 = every frame
    mode: PacingMode = PacingMode.REALTIME
    loop: bool = False
    max_width: int = Field(1280, ge=16)
    jpeg_quality: int = Field(85, ge=1, le=100)
    session: SessionPolicy = SessionPolicy()
    # ROI polygons belong to the detector's camera config; ingest only checks their shape.
    roi: list[list[tuple[float, float]]] = Field(default_factory=list)
    enabled: bool = True
    # Why this camera is analysed, and whether signage tells the people in view (privacy:
    # docs/PRIVACY.md). Both travel with each session start to the dashboard. A camera
    # file must give a purpose (load_camera_file); "" only for cameras built in code.
    purpose: str = Field("", max_length=MAX_PURPOSE_CHARS)
    notice: bool = False
    # Sentiment of fewer distinct people is not shown (with the aggregator's min_people).
    min_people: int = Field(1, ge=1, le=1000)

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value):
        if not valid_id(value):
            raise ValueError("use letters, digits, _ . : - (max 128)")
        return value

    @field_validator("purpose", mode="before")
    @classmethod
    def _null_is_none_given(cls, value):
        return "" if value is None else value  # `purpose:` left empty in YAML

    @field_validator("purpose")
    @classmethod
    def _one_line(cls, value):
        return printable_line(value)

    @field_validator("roi")
    @classmethod
    def _polygons(cls, value):
        if any(len(polygon) < 3 for polygon in value):
            raise ValueError("each ROI polygon needs at least 3 points")
        return value


class IngestSettings(ServiceSettings):
    """Settings of one ingest process; per-camera values are defaults for the CLI camera.
    Env: MOODSTREAM_INGEST_<FIELD> (a stray SOURCE or FPS in the shell is ignored)."""

    model_config = service_config("ingest")

    source: str | None = Field(None)
    camera_id: str = Field("cam1")
    session_id: str | None = Field(None)
    # Purpose and notice of the --source camera (a camera file gives its own per camera).
    purpose: str | None = Field(None, max_length=MAX_PURPOSE_CHARS)
    notice: bool = Field(False)
    fps: float = Field(5.0, ge=0)
    mode: PacingMode = Field(PacingMode.REALTIME)
    loop: bool = Field(False)
    max_width: int = Field(1280, ge=16)
    jpeg_quality: int = Field(85, ge=1, le=100)
    session_gap_s: float = Field(30.0, gt=0)
    # Default schedule of live cameras (the camera file may set its own); 0 = never.
    session_every_s: float = Field(HOURLY_S, ge=0)
    # Frames are identified by (session, run_id, seq) and seq restarts with every process:
    # unset, each start draws a fresh run id. The launcher pins it only to replay a file.
    run_id: str | None = Field(None)
    config: Path | None = Field(None)
    # A live source with no frame for this long is treated as lost and reconnected.
    stall_timeout_s: float = Field(10.0, gt=0)
    open_timeout_s: float = Field(10.0, gt=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    reconnect_max_attempts: int = Field(0, ge=0)
    # Frames sent but not yet acknowledged by the broker; past this a live frame is dropped.
    publish_buffer: int = Field(500, ge=1)
    # How long a frame may wait for a broker that is down before it counts as dropped.
    delivery_timeout_s: float = Field(60.0, ge=20)
    queue_size: int = Field(8, ge=1)  # files (WAIT)
    # Live sources keep at most this many frames in hand, so what is published is current.
    live_queue_size: int = Field(2, ge=1)

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, value):
        if value is not None and not valid_id(value):
            raise ValueError("use letters, digits, _ . : - (max 128)")
        return value

    def cameras(self) -> list[CameraConfig]:
        """The cameras to run: from the config file if given, else the one CLI camera."""
        if self.config is not None:
            return load_camera_file(self.config, self)
        if not self.source:
            raise SettingsError("nothing to ingest: give --source or --config")
        return [_build_camera(self._camera_defaults() | {
            "id": self.camera_id, "url": self.source, "purpose": self._source_purpose(),
            "notice": self.notice,
            "session": {"id": self.session_id, "gap_s": self.session_gap_s,
                        "every_s": self.session_every_s}}, "--camera-id/--source")]

    def _source_purpose(self) -> str:
        if self.purpose and self.purpose.strip():
            return self.purpose
        if is_still_source(self.source):
            return STILLS_PURPOSE
        if not (self.source.isdigit() or "://" in self.source):
            return FILE_PURPOSE
        raise SettingsError(f"camera {self.camera_id} has no purpose: set "
                            "MOODSTREAM_INGEST_PURPOSE to why it is analysed, "
                            "or list it in a camera file with a `purpose`")

    def _camera_defaults(self) -> dict:
        return {"fps": self.fps, "mode": self.mode, "loop": self.loop,
                "max_width": self.max_width, "jpeg_quality": self.jpeg_quality,
                "session": {"gap_s": self.session_gap_s, "every_s": self.session_every_s}}


def load_camera_file(path: Path, settings: IngestSettings) -> list[CameraConfig]:
    """Parse a YAML or TOML file: optional `defaults` table and a `cameras` list."""
    data = read_camera_file(path)
    defaults = data.get("defaults") or {}
    cameras = data.get("cameras")
    if not isinstance(defaults, dict) or not isinstance(cameras, list) or not cameras:
        raise SettingsError(f"{path}: expected a non-empty `cameras` list (and optional `defaults`)")
    built = []
    for index, raw in enumerate(cameras):
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: cameras[{index}] is not a table")
        merged = _merge(_merge(settings._camera_defaults(), defaults), raw)
        camera = _build_camera(merged, f"{path}: cameras[{index}]")
        if not camera.purpose:
            raise SettingsError(f"{path}: cameras[{index}] ({camera.id}): purpose is required: "
                                f"say why this camera is analysed, {PURPOSE_EXAMPLE}")
        built.append(camera)
    ids = [camera.id for camera in built]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SettingsError(f"{path}: duplicate camera id(s): {', '.join(duplicates)}")
    return [camera for camera in built if camera.enabled]


def _merge(base: dict, override: dict) -> dict:
    """Override wins key by key; nested tables (session) are merged one level down."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = merged[key] | value
        merged[key] = value
    return merged


def _build_camera(values: dict, where: str) -> CameraConfig:
    if isinstance(values.get("url"), int):
        values = values | {"url": str(values["url"])}  # webcam index written as a number
    try:
        return CameraConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "camera"
        raise SettingsError(f"{where}: {field}: {_short(err['msg'])}") from None


def _short(message: str) -> str:
    return re.sub(r"\s+", " ", message).strip()
