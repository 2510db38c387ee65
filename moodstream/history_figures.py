"""Pure figure builders of the History page (data in, figure out), beside moodstream.figures
whose palette, templates and empty states they share.

Inputs are plain lists and numpy arrays (dashboard.history_data makes them from the hourly
rollups); a None or NaN value is a gap (an hour without faces), never a zero.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moodstream.figures import (OKABE_ITO, SENTIMENT_RANGE, _base_layout, _floats, _times,
                                empty_figure)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Line colours in Okabe-Ito order (yellow left out: too pale on white).
LINE_COLORS = tuple(OKABE_ITO[name] for name in (
    "blue", "orange", "bluish_green", "vermillion", "reddish_purple", "sky_blue", "grey"))
_NEUTRAL_MID = {"light": "#F2F2F2", "dark": "#3A3A3A"}


def sentiment_scale(theme: str = "light") -> list:
    """Diverging vermillion (negative) -> neutral -> blue (positive): an orange-blue pair
    that protanopes, deuteranopes and tritanopes all tell apart."""
    return [[0.0, OKABE_ITO["vermillion"]], [0.5, _NEUTRAL_MID.get(theme, "#F2F2F2")],
            [1.0, OKABE_ITO["blue"]]]


def history_trend(hours: Sequence[Any], series: Mapping[str, tuple[Sequence, Sequence]],
                  title: str = "Sentiment and people per hour",
                  theme: str = "light") -> go.Figure:
    """Two stacked panels sharing the time axis: mean sentiment per face in each hour, and
    people (distinct tracks) counted in it; one line per label (the site or a camera).
    series maps a label to (sentiments, people), both aligned with hours."""
    if not hours or not any(np.nansum(_floats(people)) > 0 or np.any(np.isfinite(_floats(s)))
                            for s, people in series.values()):
        return empty_figure("no rollups in this range yet", title, theme)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.6, 0.4])
    x = _times(hours)
    for i, (label, (sentiments, people)) in enumerate(series.items()):
        color = LINE_COLORS[i % len(LINE_COLORS)]
        fig.add_trace(go.Scatter(x=x, y=_floats(sentiments), name=label, legendgroup=label,
                                 mode="lines+markers", connectgaps=False,
                                 marker=dict(size=3), line=dict(color=color, width=1.5),
                                 hovertemplate="%{x|%Y-%m-%d %H:00} %{y:+.2f}<extra>%{fullData.name}</extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=_floats(people), name=label, legendgroup=label,
                                 showlegend=False, mode="lines", line=dict(color=color, width=1),
                                 fill="tozeroy" if len(series) == 1 else None,
                                 hovertemplate="%{x|%Y-%m-%d %H:00} %{y:.0f} people<extra>%{fullData.name}</extra>"),
                      row=2, col=1)
    fig.update_yaxes(title_text="sentiment", range=SENTIMENT_RANGE, zeroline=True, row=1, col=1)
    fig.update_yaxes(title_text="people", rangemode="tozero", row=2, col=1)
    return _base_layout(fig, title, revision="history-trend", theme=theme)


def weekly_heatmap(grid: np.ndarray, title: str, kind: str = "sentiment",
                   theme: str = "light") -> go.Figure:
    """A 7x24 grid (weekday Mon..Sun x UTC hour of day) as a heatmap. kind "sentiment": a
    diverging scale fixed at [-1, 1] around 0; "traffic": a sequential scale from 0."""
    grid = np.asarray(grid, dtype=float)
    if grid.shape != (7, 24) or not np.any(np.isfinite(grid)):
        return empty_figure("no rollups in this range yet", title, theme)
    if kind == "sentiment":
        scale = dict(colorscale=sentiment_scale(theme), zmin=-1, zmax=1, zmid=0)
        hover = "%{y} %{x}:00 UTC: sentiment %{z:+.2f}<extra></extra>"
    else:
        scale = dict(colorscale="Cividis", zmin=0)
        hover = "%{y} %{x}:00 UTC: %{z:.1f} people per hour<extra></extra>"
    fig = go.Figure(go.Heatmap(z=grid, x=list(range(24)), y=list(WEEKDAYS), hoverongaps=False,
                               xgap=1, ygap=1, hovertemplate=hover, **scale))
    fig.update_xaxes(title="hour of day (UTC)", dtick=3)
    fig.update_yaxes(autorange="reversed")
    return _base_layout(fig, title, revision=f"heat-{kind}", theme=theme)


def camera_comparison(rows: Sequence[tuple[str, float | None, float]],
                      title: str = "Cameras compared", theme: str = "light") -> go.Figure:
    """One horizontal bar per camera, (camera, mean sentiment or None, people), sorted
    from the most negative: bars coloured by sentiment on the heatmap's scale, people in
    the label. A camera without faces in the range shows no bar."""
    rows = sorted(rows, key=lambda r: (r[1] is None, r[1] if r[1] is not None else 0, r[0]))
    if not rows:
        return empty_figure("no camera has rollups in this range", title, theme)
    sentiments = _floats(r[1] for r in rows)
    fig = go.Figure(go.Bar(
        y=[r[0] for r in rows], x=sentiments, orientation="h",
        marker=dict(color=np.nan_to_num(sentiments), colorscale=sentiment_scale(theme),
                    cmin=-1, cmax=1),
        text=[f"{r[2]:.0f} people" for r in rows], textposition="auto",
        customdata=[r[2] for r in rows],
        hovertemplate="%{y}: sentiment %{x:+.2f}, %{customdata:.0f} people<extra></extra>"))
    fig.update_xaxes(title="mean sentiment", range=SENTIMENT_RANGE, zeroline=True)
    fig.update_yaxes(automargin=True)
    fig = _base_layout(fig, title, revision="compare", theme=theme)
    fig.update_layout(height=max(320, 60 + 22 * len(rows)), showlegend=False)
    return fig
