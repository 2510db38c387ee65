"""Wire formats between services: frame headers, detection JSON, control events.

Every JSON message carries `v` (schema version). Parsing never raises anything but
MessageError, so a consumer can dead-letter or count a malformed message in one place.

Kafka input is untrusted: parsing bounds the size and nesting of the JSON, and every
number and string, before a consumer acts on it (the bounds are the constants below).
Messages built in-process get the same static bounds; the clock window on timestamps
(TS_MIN .. now + TS_MAX_AHEAD_S) is a receive-time check, applied only when parsing.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      field_validator, model_validator)

from moodstream.emotions import EMOTIONS

SCHEMA_VERSION = 1
# Ids become parts of Redis keys and file names: keep them to a safe alphabet.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")

# --- bounds on untrusted input ---
MAX_MESSAGE_BYTES = 1 << 20  # a detection with MAX_FACES faces is ~100 KB
MAX_JSON_DEPTH = 16  # a detection nests 4 deep (message > faces > face > probs)
MAX_HEADER_BYTES = 256  # one Kafka header value of the frames topic
TS_MIN = 946_684_800.0  # 2000-01-01T00:00:00Z: older capture clocks are wrong clocks
TS_LIMIT = 4_102_444_800.0  # 2100-01-01: the static bound, for messages built in-process
TS_MAX_AHEAD_S = 86_400.0  # at receipt, a timestamp may be this far ahead of our clock
MAX_OFFSET_S = 7 * 86_400.0  # session time; longer live sessions must roll over
MAX_SEQ = (1 << 26) - 1  # 7 days at 110 fps; one run's dedupe bitmap stays <= 8 MiB
MAX_FACES = 256  # faces in one frame
MAX_EXCLUDED_FACES = 4096  # faces dropped by ROI masks in one frame
MAX_FRAME_SIDE = 16_384  # pixels
MAX_TRACK_ID = (1 << 53) - 1  # detector TrackIds: 31-bit instance prefix + 22-bit counter
MAX_TIMING_MS = 1e13  # ~300 years: e2e of a frame stamped at the epoch is still in range
# int8 model outputs are multiples of 1/256: seven of them sum to 1 +- 7/512 (the shipped
# model measured 0.0078 off), so a tighter tolerance would reject real detections.
PROB_SUM_TOLERANCE = 0.02
MAX_SOURCE_CHARS = 1024  # a redacted URL or a path
MAX_REASON_CHARS = 200  # control reason, skipped reason
MAX_LABEL_CHARS = 128  # detector_id
MAX_PURPOSE_CHARS = 200  # a camera's stated purpose (camera file), shown on the dashboard
# DetectionMessage.skipped of a live frame the detector read too late to analyse.
SKIPPED_STALE = "stale"


class MessageError(ValueError):
    """A message that cannot be used; str() says why (goes into dead-letter reasons)."""


def valid_id(value: str) -> bool:
    # fullmatch: with match(), "$" would also accept a trailing newline.
    return isinstance(value, str) and bool(ID_PATTERN.fullmatch(value or ""))


def check_id(value: str, what: str) -> str:
    if not valid_id(value):
        raise MessageError(f"invalid {what} {value!r:.60}: use letters, digits, _ . : - (max 128)")
    return value


def printable_line(value: str) -> str:
    """A short human text (a camera's purpose) as one printable line, trimmed; ValueError
    for a control character or a line break."""
    if not value.isprintable():
        raise ValueError("use printable text on one line")
    return value.strip()


def check_timestamp(value: float, what: str, now: float | None = None) -> float:
    """Receive-time window: a finite epoch time from TS_MIN to TS_MAX_AHEAD_S past now."""
    now = time.time() if now is None else now
    if not (math.isfinite(value) and TS_MIN <= value <= now + TS_MAX_AHEAD_S):
        raise MessageError(f"{what} {value!r} outside [2000-01-01, now + "
                           f"{TS_MAX_AHEAD_S:.0f} s]")
    return value


def _check_range(value: float, what: str, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise MessageError(f"{what} {value!r} outside [{low:g}, {high:g}]")


@dataclass(frozen=True)
class FrameHeaders:
    """Identity and timing of one published JPEG frame (Kafka headers of the frames topic)."""

    camera_id: str
    session_id: str
    seq: int  # per-run frame counter, from 0
    capture_ts: float  # epoch seconds, source clock when known, else host clock
    offset_s: float  # seconds since session start: media time for files, wall time for live
    width: int = 0
    height: int = 0
    # One ingest process's run: seq restarts at 0 in every run, so a frame is identified
    # by (session, run_id, seq). "0" for producers that predate run ids.
    run_id: str = "0"
    # A live source (camera, stream): capture_ts is wall-clock time, so a detector that
    # reads it late may skip it (SKIPPED_STALE). Files are never live. Header "live": "1"
    # when true, absent (or "0") when false; anything else is a MessageError.
    live: bool = False
    # A still image (a photo, one of a folder of them): no continuity with the camera's
    # previous frame, so the detector tracks and scales it on its own. Header "still": "1"
    # when true, absent (or "0") when false.
    still: bool = False

    def to_kafka(self) -> list[tuple[str, bytes]]:
        return [(k, str(v).encode()) for k, v in (
            ("camera_id", self.camera_id), ("session_id", self.session_id), ("seq", self.seq),
            ("capture_ts", repr(self.capture_ts)), ("offset_s", repr(self.offset_s)),
            ("width", self.width), ("height", self.height), ("run_id", self.run_id))
        ] + ([("live", b"1")] if self.live else []) + ([("still", b"1")] if self.still else [])

    @classmethod
    def from_kafka(cls, headers: list[tuple[str, bytes]] | None,
                   now: float | None = None) -> "FrameHeaders":
        h = _header_dict(headers)
        missing = [k for k in ("camera_id", "session_id", "seq", "capture_ts") if k not in h]
        if missing:
            raise MessageError(f"missing frame header(s): {', '.join(missing)}")
        try:
            out = cls(camera_id=check_id(h["camera_id"].decode(), "camera_id"),
                      session_id=check_id(h["session_id"].decode(), "session_id"),
                      seq=int(h["seq"]), capture_ts=float(h["capture_ts"]),
                      offset_s=float(h.get("offset_s", b"0")),
                      width=int(h.get("width", b"0")), height=int(h.get("height", b"0")),
                      run_id=check_id(h.get("run_id", b"0").decode(), "run_id"),
                      live=_flag(h.get("live", b"0"), "live"),
                      still=_flag(h.get("still", b"0"), "still"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageError(f"bad frame header: {exc}") from None
        out._check_bounds(now)
        return out

    def _check_bounds(self, now: float | None) -> None:
        _check_range(self.seq, "seq", 0, MAX_SEQ)
        _check_range(self.offset_s, "offset_s", 0.0, MAX_OFFSET_S)
        _check_range(self.width, "width", 0, MAX_FRAME_SIDE)
        _check_range(self.height, "height", 0, MAX_FRAME_SIDE)
        check_timestamp(self.capture_ts, "capture_ts", now)


def _flag(value: bytes, what: str) -> bool:
    if value not in (b"0", b"1"):
        raise MessageError(f"frame header {what} must be 0 or 1, not {value[:20]!r}")
    return value == b"1"


def _header_dict(headers: Any) -> dict[str, bytes]:
    """Kafka headers as a dict; a null, non-bytes or oversized value is a MessageError."""
    out = {}
    for item in headers or []:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise MessageError("malformed frame header")
        key, value = item
        if not isinstance(value, bytes) or len(value) > MAX_HEADER_BYTES:
            raise MessageError(f"frame header {key!r:.40} is null, not bytes or too long")
        out[key] = value
    return out


# --- JSON messages ---

def _as_tuple(value):
    # Strict parsing takes no list for a tuple; JSON only has lists.
    return tuple(value) if isinstance(value, list) else value


Coordinate = Annotated[int, Field(ge=-MAX_FRAME_SIDE, le=MAX_FRAME_SIDE)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Millis = Annotated[float, Field(ge=0.0, le=MAX_TIMING_MS, allow_inf_nan=False)]
Timestamp = Annotated[float, Field(ge=0.0, le=TS_LIMIT, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Face(_Strict):
    box: Annotated[tuple[Coordinate, Coordinate, Coordinate, Coordinate],
                   BeforeValidator(_as_tuple)]  # x, y, w, h in frame pixels
    score: Probability
    track_id: int | None = Field(None, ge=0, le=MAX_TRACK_ID)
    probs: dict[str, Probability]  # raw model output, one entry per emotion
    smoothed: dict[str, Probability] | None = None  # per-track smoothed probabilities

    @field_validator("probs", "smoothed")
    @classmethod
    def _seven_emotions(cls, value):
        if value is None:
            return value
        if set(value) != set(EMOTIONS):
            raise ValueError(f"probabilities must name exactly {list(EMOTIONS)}")
        if abs(sum(value.values()) - 1.0) > PROB_SUM_TOLERANCE:
            raise ValueError(f"probabilities must sum to 1 +- {PROB_SUM_TOLERANCE}")
        return value

    @field_validator("box")
    @classmethod
    def _positive_size(cls, value):
        if value[2] < 1 or value[3] < 1:
            raise ValueError("box width and height must be at least 1 pixel")
        return value

    def clipped(self, frame_w: int, frame_h: int) -> "Face":
        """This face with its box clipped into the frame (0 = that side unknown).

        A face cut by the frame edge is real: detectors report its box partly outside,
        so it is clipped, not rejected. A box wholly outside the frame is an error."""
        x, y, w, h = self.box
        x0, y0 = max(0, x), max(0, y)
        x1 = min(x + w, frame_w) if frame_w else x + w
        y1 = min(y + h, frame_h) if frame_h else y + h
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {self.box} lies outside the {frame_w}x{frame_h} frame")
        box = (x0, y0, x1 - x0, y1 - y0)
        return self if box == self.box else self.model_copy(update={"box": box})


class Timing(_Strict):
    decode_ms: Millis = 0.0
    detect_ms: Millis = 0.0
    classify_ms: Millis = 0.0
    e2e_ms: Millis = 0.0  # capture -> detection produced


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

    def check_clock(self, now: float | None = None) -> None:
        """Receive-time checks (the timestamp window); overridden by each message type."""


class DetectionMessage(_SessionMessage):
    """Everything the detector says about one frame. No pixels, ever."""

    v: int = SCHEMA_VERSION
    camera_id: str
    session_id: str
    seq: int = Field(ge=0, le=MAX_SEQ)
    capture_ts: Timestamp
    offset_s: float = Field(ge=0.0, le=MAX_OFFSET_S, allow_inf_nan=False)
    frame_w: int = Field(0, ge=0, le=MAX_FRAME_SIDE)
    frame_h: int = Field(0, ge=0, le=MAX_FRAME_SIDE)
    faces: list[Face] = Field(default_factory=list, max_length=MAX_FACES)
    # dropped by ROI masks before classification
    excluded_faces: int = Field(0, ge=0, le=MAX_EXCLUDED_FACES)
    timing: Timing = Field(default_factory=Timing)
    detector_id: str = Field("", max_length=MAX_LABEL_CHARS)
    run_id: str = "0"  # the ingest run that published the frame (FrameHeaders.run_id)
    # Non-empty: the detector dead-lettered this frame (the reason's kind, e.g. "corrupt
    # frame"); it has no faces but still counts as handled, so sessions can complete.
    skipped: str = Field("", max_length=MAX_REASON_CHARS)

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, value):
        if not valid_id(value):
            raise ValueError("unsafe id")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.skipped and (self.faces or self.excluded_faces):
            raise ValueError("a skipped frame has no faces")
        clipped = [face.clipped(self.frame_w, self.frame_h) for face in self.faces]
        if any(new is not old for new, old in zip(clipped, self.faces)):
            object.__setattr__(self, "faces", clipped)  # frozen model: set once, here
        return self

    @property
    def frame_key(self) -> str:
        """Frame identity used for exactly-once aggregation."""
        return f"{self.camera_id}|{self.session_id}|{self.run_id}|{self.seq}"

    def check_clock(self, now: float | None = None) -> None:
        check_timestamp(self.capture_ts, "capture_ts", now)

    @classmethod
    def from_bytes(cls, raw: bytes | None, now: float | None = None) -> "DetectionMessage":
        return _parse(cls, raw, now)


class ControlEvent(_SessionMessage):
    """Session lifecycle, published by ingest on the control topic."""

    v: int = SCHEMA_VERSION
    type: Literal["session_start", "session_end"]
    camera_id: str
    session_id: str
    ts: Timestamp
    source: str = Field("", max_length=MAX_SOURCE_CHARS)  # redacted source URL or path
    # on session_end: how many frames to wait for
    frames_published: int | None = Field(None, ge=0, le=MAX_SEQ + 1)
    # on session_end: eof, gap, schedule, shutdown, error
    reason: str = Field("", max_length=MAX_REASON_CHARS)
    # on session_start: why the camera is analysed and whether signage is posted (camera
    # file); the aggregator puts both in the camera's live hash for the dashboard.
    purpose: str = Field("", max_length=MAX_PURPOSE_CHARS)
    notice: bool | None = None
    # on session_start: the camera's own privacy floor (moodstream.suppression)
    min_people: int | None = Field(None, ge=1, le=1000)

    @field_validator("purpose")
    @classmethod
    def _printable(cls, value):
        return printable_line(value)

    def check_clock(self, now: float | None = None) -> None:
        check_timestamp(self.ts, "ts", now)

    @classmethod
    def from_bytes(cls, raw: bytes | None, now: float | None = None) -> "ControlEvent":
        return _parse(cls, raw, now)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _json_depth(data: Any) -> int:
    """Nesting depth of parsed JSON (0 for a scalar), iteratively: a recursive walk could
    overflow. Stops counting once past MAX_JSON_DEPTH."""
    if not isinstance(data, (dict, list)):
        return 0
    deepest, stack = 1, [(data, 1)]
    while stack and deepest <= MAX_JSON_DEPTH:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in (node.values() if type(node) is dict else node):
            if type(child) is dict or type(child) is list:  # JSON makes no subclasses
                stack.append((child, depth + 1))
    return deepest


def _load_json(raw: Any) -> dict:
    if not raw:
        raise MessageError("empty message")
    if not isinstance(raw, (bytes, bytearray, str)):
        raise MessageError(f"message is {type(raw).__name__}, not bytes")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message too large: {len(raw)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        # Numbers too large for a float (1e400) parse as inf: the models reject non-finite
        # values field by field (allow_inf_nan=False), so no per-number hook is needed here.
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise MessageError(f"JSON nested deeper than {MAX_JSON_DEPTH}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN, over-long integers
        raise MessageError(f"not JSON: {str(exc)[:200]}") from None
    if _json_depth(data) > MAX_JSON_DEPTH:
        raise MessageError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    if not isinstance(data, dict):
        raise MessageError("not a JSON object")
    version = data.get("v")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise MessageError(f"unsupported schema version {str(version)[:40]!r}")
    return data


def _parse(model: type[_SessionMessage], raw: bytes | None, now: float | None = None):
    data = _load_json(raw)
    try:
        # Strict: a string or a boolean where a number belongs is an error, not a number.
        message = model.model_validate(data, strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise MessageError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}"[:300]) from None
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise MessageError(f"invalid message: {type(exc).__name__}") from None
    message.check_clock(now)
    return message
