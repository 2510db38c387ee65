"""Wire formats between services: frame headers, detection JSON, control events.

Every JSON message carries `v` (schema version). Parsing never raises anything but
MessageError, so a consumer can dead-letter or count a malformed message in one place.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from moodstream.emotions import EMOTIONS

SCHEMA_VERSION = 1
# Ids become parts of Redis keys and file names: keep them to a safe alphabet.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class MessageError(ValueError):
    """A message that cannot be used; str() says why (goes into dead-letter reasons)."""


def valid_id(value: str) -> bool:
    # fullmatch: with match(), "$" would also accept a trailing newline.
    return bool(ID_PATTERN.fullmatch(value or ""))


def check_id(value: str, what: str) -> str:
    if not valid_id(value):
        raise MessageError(f"invalid {what} {value!r}: use letters, digits, _ . : - (max 128)")
    return value


@dataclass(frozen=True)
class FrameHeaders:
    """Identity and timing of one published JPEG frame (Kafka headers of the frames topic)."""

    camera_id: str
    session_id: str
    seq: int  # per-session frame counter, from 0
    capture_ts: float  # epoch seconds, source clock when known, else host clock
    offset_s: float  # seconds since session start: media time for files, wall time for live
    width: int = 0
    height: int = 0
    # One ingest process's run: seq restarts at 0 in every run, so a frame is identified
    # by (session, run_id, seq). "0" for producers that predate run ids.
    run_id: str = "0"

    def to_kafka(self) -> list[tuple[str, bytes]]:
        return [(k, str(v).encode()) for k, v in (
            ("camera_id", self.camera_id), ("session_id", self.session_id), ("seq", self.seq),
            ("capture_ts", repr(self.capture_ts)), ("offset_s", repr(self.offset_s)),
            ("width", self.width), ("height", self.height), ("run_id", self.run_id))]

    @classmethod
    def from_kafka(cls, headers: list[tuple[str, bytes]] | None) -> "FrameHeaders":
        h = {k: v for k, v in (headers or [])}
        missing = [k for k in ("camera_id", "session_id", "seq", "capture_ts") if k not in h]
        if missing:
            raise MessageError(f"missing frame header(s): {', '.join(missing)}")
        try:
            capture_ts = float(h["capture_ts"])
            return cls(
                camera_id=check_id(h["camera_id"].decode(), "camera_id"),
                session_id=check_id(h["session_id"].decode(), "session_id"),
                seq=int(h["seq"]), capture_ts=capture_ts,
                offset_s=float(h.get("offset_s", b"0")),
                width=int(h.get("width", b"0")), height=int(h.get("height", b"0")),
                run_id=check_id(h.get("run_id", b"0").decode(), "run_id"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageError(f"bad frame header: {exc}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Face(_Strict):
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    score: float
    track_id: int | None = None
    probs: dict[str, float]  # raw model output, one entry per emotion
    smoothed: dict[str, float] | None = None  # per-track smoothed probabilities

    @field_validator("probs", "smoothed")
    @classmethod
    def _seven_emotions(cls, value):
        if value is not None and set(value) != set(EMOTIONS):
            raise ValueError(f"probabilities must name exactly {list(EMOTIONS)}")
        return value


class Timing(_Strict):
    decode_ms: float = 0.0
    detect_ms: float = 0.0
    classify_ms: float = 0.0
    e2e_ms: float = 0.0  # capture -> detection produced


class _SessionMessage(_Strict):
    """A message about one camera's session: both ids become Redis key parts, so check them."""

    camera_id: str
    session_id: str

    @field_validator("camera_id", "session_id")
    @classmethod
    def _safe_id(cls, value):
        if not valid_id(value):
            raise ValueError("unsafe id")
        return value

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class DetectionMessage(_SessionMessage):
    """Everything the detector says about one frame. No pixels, ever."""

    v: int = SCHEMA_VERSION
    camera_id: str
    session_id: str
    seq: int
    capture_ts: float
    offset_s: float
    frame_w: int = 0
    frame_h: int = 0
    faces: list[Face] = Field(default_factory=list)
    excluded_faces: int = 0  # dropped by ROI masks before classification
    timing: Timing = Field(default_factory=Timing)
    detector_id: str = ""
    run_id: str = "0"  # the ingest run that published the frame (FrameHeaders.run_id)
    # Non-empty: the detector dead-lettered this frame (the reason's kind, e.g. "corrupt
    # frame"); it has no faces but still counts as handled, so sessions can complete.
    skipped: str = ""

    @property
    def frame_key(self) -> str:
        """Frame identity used for exactly-once aggregation."""
        return f"{self.camera_id}|{self.session_id}|{self.run_id}|{self.seq}"

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "DetectionMessage":
        return _parse(cls, raw)


class ControlEvent(_SessionMessage):
    """Session lifecycle, published by ingest on the control topic."""

    v: int = SCHEMA_VERSION
    type: Literal["session_start", "session_end"]
    camera_id: str
    session_id: str
    ts: float
    source: str = ""  # redacted source URL or path
    frames_published: int | None = None  # on session_end: how many frames to wait for
    reason: str = ""  # on session_end: eof, gap, schedule, shutdown, error

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "ControlEvent":
        return _parse(cls, raw)


def _parse(model: type[BaseModel], raw: bytes | None):
    if not raw:
        raise MessageError("empty message")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("not a JSON object")
    if data.get("v") != SCHEMA_VERSION:
        raise MessageError(f"unsupported schema version {data.get('v')!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise MessageError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
