"""Per-camera alert thresholds: the one definition of their bounds and stored form.

The dashboard writes them (an admin's edit) and the aggregator reads them, so both check a
value against the same limits here: the dashboard refuses a bad edit with a message, and
the aggregator ignores a bad stored entry (that camera keeps the aggregator's defaults).
Stored as JSON in the `alert_thresholds` hash, one field per camera (moodstream.redis_keys).
Sentiment levels are magnitudes, as in the aggregator's settings: an alert opens when the
window mean is <= -threshold and resolves above -resolve_threshold.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

MAX_MIN_DURATION_S = 3600.0  # an hour of continuous breach before an alert: beyond is a typo
MAX_UPDATED_BY_CHARS = 128


class ThresholdError(ValueError):
    """A threshold value outside its bounds; str() is one line to show the user."""


@dataclass(frozen=True)
class CameraThresholds:
    threshold: float  # opens at window mean <= -threshold, in (0, 1]
    resolve_threshold: float  # resolves above -resolve_threshold, in [0, threshold]
    min_duration_s: float  # breach must last this long, in [0, MAX_MIN_DURATION_S]
    updated_by: str = ""
    updated_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ThresholdError(f"{name} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ThresholdError(f"{name} must be a number") from None
    if not math.isfinite(number):
        raise ThresholdError(f"{name} must be a finite number")
    return number


def make_thresholds(threshold: Any, resolve_threshold: Any, min_duration_s: Any,
                    updated_by: str = "", updated_at: float = 0.0) -> CameraThresholds:
    """Checked thresholds, or ThresholdError naming the first value out of bounds."""
    level = _finite(threshold, "threshold")
    resolve = _finite(resolve_threshold, "resolve threshold")
    duration = _finite(min_duration_s, "minimum duration")
    if not 0 < level <= 1:
        raise ThresholdError("threshold must be in (0, 1]")
    if not 0 <= resolve <= 1:
        raise ThresholdError("resolve threshold must be in [0, 1]")
    if resolve > level:
        raise ThresholdError("resolve threshold must not exceed the threshold "
                             "(the resolve level sits between the open level and neutral)")
    if not 0 <= duration <= MAX_MIN_DURATION_S:
        raise ThresholdError(f"minimum duration must be in [0, {MAX_MIN_DURATION_S:.0f}] s")
    return CameraThresholds(level, resolve, duration, str(updated_by)[:MAX_UPDATED_BY_CHARS],
                            _finite(updated_at, "updated_at"))


def parse_thresholds(raw: str | bytes | None) -> CameraThresholds | None:
    """A stored entry as thresholds; None when it is absent or not valid (never raises)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return make_thresholds(data["threshold"], data["resolve_threshold"],
                               data["min_duration_s"], data.get("updated_by") or "",
                               data.get("updated_at") or 0.0)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None
