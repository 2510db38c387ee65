"""Pure figure builders of the History page (data in, figure out), beside moodstream.figures
whose palette, templates and layout conventions they share.

They return plotly figures as plain dicts (moodstream.figures.plain_layout; plotly's JSON
schema, which dcc.Graph and plotly.io take as they are) rather than go.Figure: building a
go.Figure validates every property and deep-copies its template, about 30 ms a chart on the
dev machine even before its data; a 30-day History refresh draws four charts, and the page's budget is 200 ms.
Inputs are plain lists and numpy arrays (dashboard.history_data makes them from the hourly
rollups); a None or NaN value is a gap (an hour without faces), never a zero.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from moodstream.figures import (OKABE_ITO, SENTIMENT_RANGE, _floats, iso_times, plain_empty,
                                plain_layout)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Line colours in Okabe-Ito order (yellow left out: too pale on white).
LINE_COLORS = tuple(OKABE_ITO[name] for name in (
    "blue", "orange", "bluish_green", "vermillion", "reddish_purple", "sky_blue", "grey"))
_NEUTRAL_MID = {"light": "#F2F2F2", "dark": "#3A3A3A"}
EMPTY = "no rollups in this range yet"


empty = plain_empty  # the History page's blank charts


def sentiment_scale(theme: str = "light") -> list:
    """Diverging vermillion (negative) -> neutral -> blue (positive): an orange-blue pair
    that protanopes, deuteranopes and tritanopes all tell apart."""
    return [[0.0, OKABE_ITO["vermillion"]], [0.5, _NEUTRAL_MID.get(theme, "#F2F2F2")],
            [1.0, OKABE_ITO["blue"]]]


def history_trend(hours: Sequence[Any], series: Mapping[str, tuple[Sequence, Sequence]],
                  title: str = "Sentiment and people per hour", theme: str = "light") -> dict:
    """Two stacked panels sharing the time axis: mean sentiment per face in each hour, and
    people (distinct tracks) counted in it; one line per label (the site or a camera).
    series maps a label to (sentiments, people), both aligned with hours."""
    columns = {label: (_floats(s), _floats(p)) for label, (s, p) in series.items()}
    if not len(hours) or not any(np.isfinite(s).any() or np.nansum(p) > 0
                                 for s, p in columns.values()):
        return empty(EMPTY, title, theme)
    x, data = iso_times(hours), []  # strings: encoded at once, not one by one
    for i, (label, (sentiments, people)) in enumerate(columns.items()):
        color = LINE_COLORS[i % len(LINE_COLORS)]
        data.append({"type": "scatter", "x": x, "y": sentiments, "name": label,
                     "legendgroup": label, "mode": "lines+markers", "connectgaps": False,
                     "marker": {"size": 3}, "line": {"color": color, "width": 1.5},
                     "hovertemplate": "%{x|%Y-%m-%d %H:00} %{y:+.2f}<extra>%{fullData.name}</extra>"})
        data.append({"type": "scatter", "x": x, "y": people, "name": label, "legendgroup": label,
                     "showlegend": False, "mode": "lines", "xaxis": "x2", "yaxis": "y2",
                     "line": {"color": color, "width": 1},
                     "fill": "tozeroy" if len(columns) == 1 else "none",
                     "hovertemplate": "%{x|%Y-%m-%d %H:00} %{y:.0f} people<extra>%{fullData.name}</extra>"})
    return {"data": data, "layout": plain_layout(
        title, "history-trend", theme,
        xaxis={"anchor": "y", "matches": "x2", "showticklabels": False},
        xaxis2={"anchor": "y2"},
        yaxis={"domain": [0.42, 1.0], "title": {"text": "sentiment"}, "range": SENTIMENT_RANGE,
               "zeroline": True},
        yaxis2={"domain": [0.0, 0.36], "title": {"text": "people"}, "rangemode": "tozero"})}


def weekly_heatmap(grid: np.ndarray, title: str, kind: str = "sentiment",
                   theme: str = "light") -> dict:
    """A 7x24 grid (weekday Mon..Sun x UTC hour of day) as a heatmap. kind "sentiment": a
    diverging scale fixed at [-1, 1] around 0; "traffic": a sequential scale from 0."""
    grid = np.asarray(grid, dtype=float)
    if grid.shape != (7, 24) or not np.isfinite(grid).any():
        return empty(EMPTY, title, theme)
    if kind == "sentiment":
        scale = {"colorscale": sentiment_scale(theme), "zmin": -1, "zmax": 1, "zmid": 0}
        hover = "%{y} %{x}:00 UTC: sentiment %{z:+.2f}<extra></extra>"
    else:
        scale = {"colorscale": "Cividis", "zmin": 0}
        hover = "%{y} %{x}:00 UTC: %{z:.1f} people per hour<extra></extra>"
    heat = {"type": "heatmap", "z": grid, "x": list(range(24)), "y": list(WEEKDAYS),
            "hoverongaps": False, "xgap": 1, "ygap": 1, "hovertemplate": hover, **scale}
    return {"data": [heat], "layout": plain_layout(
        title, f"heat-{kind}", theme, xaxis={"title": {"text": "hour of day (UTC)"}, "dtick": 3},
        yaxis={"autorange": "reversed"})}


def camera_comparison(rows: Sequence[tuple[str, float | None, float]],
                      title: str = "Cameras compared", theme: str = "light") -> dict:
    """One horizontal bar per camera, (camera, mean sentiment or None, people), sorted
    from the most negative: bars coloured on the heatmap's scale, people in the label. A
    camera without faces in the range is listed last, without a bar."""
    rows = sorted(rows, key=lambda r: (r[1] is None, r[1] if r[1] is not None else 0, r[0]))
    if not rows:
        return empty("no camera has rollups in this range", title, theme)
    sentiments = _floats(r[1] for r in rows)
    bars = {"type": "bar", "orientation": "h", "y": [r[0] for r in rows], "x": sentiments,
            "marker": {"color": np.nan_to_num(sentiments), "colorscale": sentiment_scale(theme),
                       "cmin": -1, "cmax": 1},
            "text": [f"{r[2]:.0f} people" for r in rows], "textposition": "auto",
            "customdata": [r[2] for r in rows],
            "hovertemplate": "%{y}: sentiment %{x:+.2f}, %{customdata:.0f} people<extra></extra>"}
    return {"data": [bars], "layout": plain_layout(
        title, "compare", theme, showlegend=False, height=max(320, 60 + 22 * len(rows)),
        xaxis={"title": {"text": "mean sentiment"}, "range": SENTIMENT_RANGE, "zeroline": True},
        yaxis={"automargin": True})}
