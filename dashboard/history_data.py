"""History reads: the hourly and daily rollups (moodstream.rollups) over a chosen range, and
what the History page draws from them (figures_for: pure, importable without the app).

Every read goes through DashboardData.shared, the one cached reader per refresh interval:
whatever the number of viewers, one set of Redis reads per range and tick. Cache entries are
named by range preset (and camera), never by arbitrary dates, so the cache stays bounded; a
custom range that another viewer's differs from in the same tick is read directly.

What a view costs Redis: the "all cameras" series is one HMGET on the site's hourly hash;
each selected camera one HMGET on its own; the camera comparison one HMGET per camera on
the daily hashes (hourly for ranges under two days). Rollups change at most once per
aggregator rollup pass (30 s by default).

Privacy (moodstream.suppression): an hour, or a day of the comparison, whose rollup counts
fewer distinct people than its camera's `min_people` shows no sentiment and adds none to the
heatmap, the comparison or the summary's mean; its frames, faces and people still count.
A camera's floor is the `min_people` in its live hash (1 once that hash has expired); the
site's series uses the largest floor of any camera.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable

import numpy as np

from dashboard.data import DashboardData, _guarded
from moodstream import history_figures as hf
from moodstream.redis_keys import ROLLUP_FIELDS
from moodstream.rollups import DAY_S, HOUR_S, hour_of
from moodstream.schemas import valid_id
from moodstream.suppression import min_people_of, too_few

RANGES = {"hour": "Last hour", "today": "Today", "7d": "7 days", "30d": "30 days",
          "custom": "Custom"}
MAX_RANGE_DAYS = 400  # as long as rollups are kept by default
MAX_CAMERA_LINES = 8  # more lines than that are unreadable: pick cameras
SITE = "All cameras"
F = {name: i for i, name in enumerate(ROLLUP_FIELDS)}
_ZERO_ROW = ",".join("0" * len(ROLLUP_FIELDS))


class RangeError(ValueError):
    """A custom range the page cannot show; str() says why in one line."""


@dataclass(frozen=True)
class HistoryRange:
    key: str  # one of RANGES
    start: int  # first hour (epoch s, UTC)
    end: int  # hour after the last one

    @property
    def hours(self) -> list[int]:
        return list(range(self.start, self.end, HOUR_S))

    @property
    def days(self) -> list[int]:
        return list(range(self.start - self.start % DAY_S, self.end, DAY_S))

    @property
    def by_day(self) -> bool:
        """Whole days only (today's partial day included): the comparison reads days."""
        return self.start % DAY_S == 0 and self.end - self.start >= 2 * DAY_S


def resolve_range(key: str, now: float, start_date: str | None = None,
                  end_date: str | None = None) -> HistoryRange:
    """A preset (UTC: "today" starts at 00:00 UTC) or a custom span of whole UTC days."""
    this_hour = hour_of(now)
    today = this_hour - this_hour % DAY_S
    presets = {"hour": this_hour - HOUR_S, "today": today, "7d": today - 6 * DAY_S,
               "30d": today - 29 * DAY_S}
    if key in presets:
        return HistoryRange(key, presets[key], this_hour + HOUR_S)
    if key != "custom":
        raise RangeError(f"unknown range {key!r}")
    first, last = _day(start_date), _day(end_date)
    if first is None or last is None:
        raise RangeError("pick a start and an end date")
    if last < first:
        raise RangeError("the end date is before the start date")
    if last - first >= MAX_RANGE_DAYS * DAY_S:
        raise RangeError(f"a range spans at most {MAX_RANGE_DAYS} days")
    return HistoryRange("custom", first, last + DAY_S)


def _day(value: str | None) -> int | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


@dataclass(frozen=True)
class HistoryView:
    """Rollup numbers of one range: rows in ROLLUP_FIELDS order (F names the columns)."""

    range: HistoryRange
    series: dict[str, np.ndarray]  # SITE or a camera -> (hours, fields), one row per hour
    comparison: dict[str, np.ndarray]  # camera -> (days or hours, fields) over the range
    floors: dict[str, int] = field(default_factory=dict)  # camera or SITE -> min_people

    @property
    def hours(self) -> list[datetime]:
        return [datetime.fromtimestamp(h, timezone.utc).replace(tzinfo=None)
                for h in self.range.hours]

    def total(self, series: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The range's totals over the shown series (the site, or the picked cameras), or
        over `series` (rated_series)."""
        series = self.series if series is None else series
        return sum(rows.sum(axis=0) for rows in series.values()) if series \
            else np.zeros(len(ROLLUP_FIELDS))

    @functools.cached_property  # the charts and the summary line both use it
    def rated_series(self) -> dict[str, np.ndarray]:
        """The series with each label's hours of too few people taken out (rated)."""
        return {label: rated(rows, self.floors.get(label, 1))
                for label, rows in self.series.items()}


def rated(rows: np.ndarray, floor: int) -> np.ndarray:
    """rows with the faces and sentiment of every row built from fewer than floor distinct
    people taken out, for sentiment only: those rows' sentiment is not shown, and adds
    nothing to a mean (their counts stay in the rows themselves)."""
    hidden = too_few(rows[:, F["people"]], floor)
    if not np.any(hidden):
        return rows
    out = rows.copy()
    out[hidden, F["faces"]] = 0.0
    out[hidden, F["sentiment_sum"]] = 0.0
    return out


class HistoryData:
    def __init__(self, data: DashboardData):
        self.data = data
        self.client, self.keys = data.client, data.keys

    def cameras(self) -> list[str]:
        """Cameras with rollups, sorted (read once per tick for everyone)."""
        return self.data.shared("history:cameras", self._cameras)

    def view(self, rng: HistoryRange, cameras: tuple[str, ...] = ()) -> HistoryView:
        """The site's series (no camera picked) or each picked camera's, and the comparison
        of every camera; raises DataUnavailable when Redis cannot answer."""
        picked = tuple(c for c in cameras if valid_id(c))[:MAX_CAMERA_LINES]
        if picked:
            series = {c: self._shared(f"history:camera:{c}:{rng.key}", rng,
                                      lambda c=c: self._hours(self.keys.rollup_hourly(c), rng))
                      for c in picked}
        else:
            series = {SITE: self._shared(f"history:site:{rng.key}", rng, lambda: self._hours(
                self.keys.rollup_site("hourly"), rng))}
        comparison = self._shared(f"history:compare:{rng.key}", rng,
                                  lambda: self._comparison(rng))
        floors = self.floors()
        floors[SITE] = max(floors.values(), default=1)
        return HistoryView(rng, series, comparison, floors)

    def floors(self) -> dict[str, int]:
        """Each rollup camera's min_people, from its live hash (read once per tick)."""
        return dict(self.data.shared("history:min-people", self._floors))

    def _shared(self, name: str, rng: HistoryRange, read: Callable[[], object]):
        """One read per tick for every viewer of this range; a viewer whose custom range
        differs from the cached one this tick reads its own (the cache stays bounded)."""
        cached_rng, value = self.data.shared(name, lambda: (rng, read()))
        return value if cached_rng == rng else read()

    @_guarded
    def _cameras(self) -> list[str]:
        return sorted(c for c in self.client.smembers(self.keys.rollup_cameras) if valid_id(c))

    @_guarded
    def _floors(self) -> dict[str, int]:
        cameras = self._cameras()
        pipe = self.client.pipeline(transaction=False)
        for camera in cameras:
            pipe.hget(self.keys.camera_live(camera), "min_people")
        return {camera: min_people_of({"min_people": raw})
                for camera, raw in zip(cameras, pipe.execute())}

    @_guarded
    def _hours(self, key: str, rng: HistoryRange) -> np.ndarray:
        return _parse(self.client.hmget(key, rng.hours), len(rng.hours))

    @_guarded
    def _comparison(self, rng: HistoryRange) -> dict[str, np.ndarray]:
        cameras = self._cameras()
        fields = rng.days if rng.by_day else rng.hours
        pipe = self.client.pipeline(transaction=False)
        for camera in cameras:
            pipe.hmget(self.keys.rollup_daily(camera) if rng.by_day
                       else self.keys.rollup_hourly(camera), fields)
        return {camera: _parse(packed, len(fields))
                for camera, packed in zip(cameras, pipe.execute())}


def _parse(packed: list[str | None], rows: int) -> np.ndarray:
    """HMGET replies -> (rows, fields) floats; an absent or malformed hour is zeros. One
    numpy conversion for all rows (a 30-day range is 720 of them)."""
    text = ",".join(_checked(v) for v in packed)
    try:
        values = np.array(text.split(","), dtype=float)
    except ValueError:  # something not a number slipped past _checked
        values = np.zeros(rows * len(ROLLUP_FIELDS))
    values[~np.isfinite(values)] = 0.0
    return values.reshape(rows, len(ROLLUP_FIELDS))


def _checked(packed: str | None) -> str:
    if not packed or packed.count(",") != len(ROLLUP_FIELDS) - 1:
        return _ZERO_ROW
    return packed


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise numerator / denominator, NaN (a gap) where the denominator is 0."""
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=np.asarray(denominator) > 0)
    return out


def weekly_grid(hours: list[int], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sentiment, traffic) as 7x24 grids, weekday (Mon=0) x UTC hour of day: mean
    sentiment per face, and mean people per hour (NaN where the range has no such hour)."""
    hours = np.asarray(hours, dtype=np.int64)
    cell = ((hours // DAY_S + 3) % 7) * 24 + hours % DAY_S // HOUR_S  # 1970-01-01: a Thursday
    sums = np.zeros((7 * 24, 3))  # sentiment_sum, faces, people
    np.add.at(sums, cell, rows[:, [F["sentiment_sum"], F["faces"], F["people"]]])
    count = np.bincount(cell, minlength=7 * 24).astype(float)
    sums, count = sums.reshape(7, 24, 3), count.reshape(7, 24)
    return ratio(sums[..., 0], sums[..., 1]), ratio(sums[..., 2], count)


def range_label(rng: HistoryRange) -> str:
    """'2026-11-24 00:00 – 2026-11-30 23:59 UTC'."""
    fmt = "%Y-%m-%d %H:%M"
    first = datetime.fromtimestamp(rng.start, timezone.utc)
    last = datetime.fromtimestamp(rng.end, timezone.utc) - timedelta(minutes=1)
    return f"{first.strftime(fmt)} – {last.strftime(fmt)} UTC"


# ---------------------------------------------------------------- what the page draws

def figures_for(view: HistoryView, theme: str) -> tuple:
    """(summary line, trend, sentiment heatmap, traffic heatmap, comparison) of a view."""
    shown = view.rated_series  # min_people: hidden hours show and add no sentiment
    series = {label: (ratio(shown[label][:, F["sentiment_sum"]], shown[label][:, F["faces"]]),
                      rows[:, F["people"]]) for label, rows in view.series.items()}
    heat_sentiment, _ = weekly_grid(view.range.hours, sum(shown.values()))
    _, heat_traffic = weekly_grid(view.range.hours, sum(view.series.values()))
    where = SITE.lower() if SITE in view.series else ", ".join(view.series)
    compare = []
    for camera, rows in view.comparison.items():
        total, mood = rows.sum(axis=0), rated(rows, view.floors.get(camera, 1)).sum(axis=0)
        if total[F["frames"]] > 0:
            compare.append((camera, _mean(mood[F["sentiment_sum"]], mood[F["faces"]]),
                            total[F["people"]]))
    return (
        summary_line(view),
        hf.history_trend(view.hours, series, f"Sentiment and people per hour · {where}",
                         theme),
        hf.weekly_heatmap(heat_sentiment, "Sentiment by weekday and hour", "sentiment", theme),
        hf.weekly_heatmap(heat_traffic, "People per hour by weekday and hour", "traffic", theme),
        hf.camera_comparison(compare, "Cameras compared over the range", theme),
    )


def summary_line(view: HistoryView) -> str:
    shown = view.rated_series
    total, mood = view.total(), view.total(shown)
    mean = _mean(mood[F["sentiment_sum"]], mood[F["faces"]])
    hidden = sum(int(np.count_nonzero(rows[:, F["faces"]] > shown[label][:, F["faces"]]))
                 for label, rows in view.series.items())
    floor = max((view.floors.get(label, 1) for label in view.series), default=1)
    return (f"{range_label(view.range)} · {int(total[F['frames']]):,} frames · "
            f"{int(total[F['faces']]):,} faces · {int(total[F['people']]):,} people "
            f"(counted per hour) · mean sentiment "
            f"{'—' if mean is None else format(mean, '+.2f')}"
            + (f" · sentiment hidden in {hidden} h (fewer than {floor} people)"
               if hidden else ""))


def _mean(total: float, faces: float) -> float | None:
    return float(total) / float(faces) if faces > 0 and math.isfinite(total) else None
