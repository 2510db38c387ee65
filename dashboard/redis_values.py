"""Values read from Redis as the dashboard uses them: checked numbers and timestamps, and
the one way a Redis failure reaches a page (DataUnavailable, via _guarded)."""

from __future__ import annotations

import functools
import math
from datetime import datetime, timezone
from typing import Any, Callable

from moodstream.clients import REDIS_ERRORS
from moodstream.schemas import TS_LIMIT


class DataUnavailable(RuntimeError):
    """Redis could not answer; str() is safe to show (no URL, no credentials)."""



def _float(value: Any) -> float | None:
    """A finite number, or None (absent, not a number, NaN or infinite)."""
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _timestamp(value: Any) -> float | None:
    """Epoch seconds the aggregator could have written (schemas.TS_LIMIT), else None: a
    page never overflows on a timestamp (datetime stops at year 9999)."""
    number = _float(value)
    return number if number is not None and 0 <= number <= TS_LIMIT else None


def _int(value: Any) -> int:
    number = _float(value)
    return int(number) if number is not None else 0


def utc(ts: float) -> datetime:
    """Epoch seconds -> naive UTC datetime (plotly shows naive datetimes as given)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).replace(tzinfo=None)


def _guarded(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except REDIS_ERRORS as exc:
            raise DataUnavailable(f"Redis unreachable ({type(exc).__name__})") from None
    return wrapper


def _iso_ts(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None

