"""Pure figure builders shared by the dashboard and the reports: data in, figure out (the
HTML report embeds them; the PDF report draws them through moodstream.chart_images).
What the dashboard redraws every refresh (sparklines, trend lines, emotion mix, the session
charts) is built as a plain plotly dict (plain_layout), skipping go.Figure's validation and
template copy; dcc.Graph, plotly.io and chart_images take both, and go.Figure(d) reads one.

Nothing here touches Redis, files or the clock, so every builder is unit-testable with
plain lists and dicts. Timelines are the `timeline` entries of a session report
(moodstream.reports.build_report): ``{t, frames, faces, people, sentiment, emotions{...}}``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from moodstream.emotions import EMOTIONS

# One colour per emotion everywhere (dashboard pages and HTML reports), so a chart reads the
# same on every page. Okabe & Ito's colour-blind-safe palette (distinguishable with
# protanopia, deuteranopia and tritanopia), its yellow left out (too pale on white) and its
# black replaced by a mid grey for neutral, which must read on the dark theme too.
OKABE_ITO = {"orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00",
             "reddish_purple": "#CC79A7", "grey": "#999999"}
EMOTION_COLORS: Mapping[str, str] = {
    "angry": OKABE_ITO["vermillion"],
    "disgust": OKABE_ITO["reddish_purple"],
    "fear": OKABE_ITO["sky_blue"],
    "happy": OKABE_ITO["bluish_green"],
    "neutral": OKABE_ITO["grey"],
    "sad": OKABE_ITO["blue"],
    "surprise": OKABE_ITO["orange"],
}
THEMES = ("light", "dark")
SENTIMENT_RANGE = (-1.05, 1.05)
_MARGIN = dict(l=50, r=20, t=40, b=40)


def _floats(values) -> np.ndarray:
    """None -> NaN (a gap). numpy arrays also spare plotly its slow per-element validation
    and travel to the browser as compact typed arrays: this is the live path."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _times(values) -> np.ndarray:
    return np.array(values, dtype="datetime64[ms]")


def _template(theme: str) -> str:
    return "plotly_dark" if theme == "dark" else "plotly_white"


def _base_layout(fig: go.Figure, title: str, revision: str | None = None,
                 theme: str = "light") -> go.Figure:
    # uirevision keeps the user's zoom and legend clicks across the periodic refresh.
    # Transparent backgrounds: the chart takes the card's colour in either theme.
    fig.update_layout(title=title, template=_template(theme), margin=_MARGIN,
                      uirevision=revision or title, legend=dict(orientation="h", y=-0.2),
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return fig


@functools.lru_cache(maxsize=4)
def _template_json(theme: str) -> dict:
    return pio.templates[_template(theme)].to_plotly_json()


def plain_layout(title: str, revision: str, theme: str, **extra) -> dict:
    """moodstream.figures' layout conventions (theme template, margins, legend below,
    transparent backgrounds, uirevision keeping zoom across refreshes), as a dict."""
    return {"title": {"text": title}, "template": _template_json(theme), "margin": _MARGIN,
            "uirevision": revision, "legend": {"orientation": "h", "y": -0.2},
            "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)", **extra}


def _blank_note(message: str, size: int = 14) -> dict:
    """The centred grey message of a chart with nothing to draw (every blank builder's)."""
    return {"text": message, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper",
            "yref": "paper", "font": {"size": size, "color": "#888"}}


def plain_empty(message: str, title: str = "", theme: str = "light") -> dict:
    """A blank chart that says why it is blank."""
    hidden = {"visible": False}
    return {"data": [], "layout": plain_layout(title, title, theme, xaxis=hidden, yaxis=hidden,
                                               annotations=[_blank_note(message)])}


def empty_figure(message: str, title: str = "", theme: str = "light") -> go.Figure:
    """A blank chart that says why it is blank (no data yet, Redis unreachable, ...)."""
    fig = go.Figure()
    fig.add_annotation(**_blank_note(message))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _base_layout(fig, title, theme=theme)


def iso_times(values) -> list[str]:
    """Times as ISO strings to the second, which a date axis reads as they are, where
    datetime arrays are encoded to JSON one value at a time. datetime.isoformat is the
    fastest way from datetime objects (the live series hold them); anything else goes
    through numpy."""
    values = list(values)
    if all(isinstance(v, datetime) for v in values):
        return [v.isoformat(timespec="seconds") for v in values]
    return np.datetime_as_string(_times(values), unit="s").tolist()


def sparkline(points: Sequence[tuple[Any, float | None]], theme: str = "light") -> dict:
    """A camera card's small sentiment line (x, sentiment in [-1, 1]): no axes, no legend,
    a faint zero line; seconds without faces are gaps. Empty -> a blank that says so.

    A plain plotly dict, not a go.Figure (whose validation and template copy cost ~50 ms a
    chart; the overview draws dozens a refresh), without the theme's template: nothing of
    it shows on a chart without axes.
    """
    layout = {"margin": dict(l=2, r=2, t=2, b=2), "height": 70, "showlegend": False,
              "uirevision": "spark", "paper_bgcolor": "rgba(0,0,0,0)",
              "plot_bgcolor": "rgba(0,0,0,0)", "xaxis": {"visible": False},
              "yaxis": {"visible": False, "range": SENTIMENT_RANGE}}
    if not any(y is not None for _x, y in points):
        layout["annotations"] = [_blank_note("no faces in the last 15 min", size=11)]
        return {"data": [], "layout": layout}
    layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                         "y0": 0, "y1": 0, "line": {"width": 1, "dash": "dot", "color": "#888"}}]
    colour = OKABE_ITO["blue"] if theme == "light" else OKABE_ITO["sky_blue"]
    line = {"type": "scatter", "x": iso_times([p[0] for p in points]),
            "y": _floats([p[1] for p in points]), "mode": "lines", "connectgaps": False,
            "name": "sentiment", "line": {"width": 1.5, "color": colour},
            "hovertemplate": "%{x|%H:%M:%S} %{y:+.2f}<extra></extra>"}
    return {"data": [line], "layout": layout}


def sentiment_trend(series: Mapping[str, Sequence[tuple[Any, float | None]]],
                    title: str = "Sentiment trend", theme: str = "light",
                    markers: bool = False) -> dict:
    """One sentiment line per camera/session; series maps a label to (x, sentiment) points.

    A None sentiment (a second without faces) leaves a gap instead of a fake zero. A plain
    plotly dict (the overview draws it every refresh: see sparkline); markers for sparse
    points (an hour with faces between two without would otherwise be invisible).
    """
    if not any(series.values()):
        return plain_empty("no sentiment in this window yet", title, theme)
    data = [{"type": "scatter", "x": _times([p[0] for p in points]),
             "y": _floats([p[1] for p in points]), "name": label, "connectgaps": False,
             "mode": "lines+markers" if markers else "lines"}
            for label, points in series.items()]
    return {"data": data, "layout": plain_layout(title, "trend", theme, yaxis={
        "title": {"text": "sentiment"}, "range": SENTIMENT_RANGE, "zeroline": True})}


def emotion_mix(mix: Mapping[str, Mapping[str, float]], title: str = "Emotion mix",
                theme: str = "light") -> dict:
    """Stacked horizontal bars: for each camera (or session) the share of each emotion
    (a plain plotly dict, as sentiment_trend)."""
    rows = {name: shares for name, shares in mix.items() if sum(shares.values()) > 0}
    if not rows:
        return plain_empty("no faces seen yet", title, theme)
    names = list(rows)
    data = [{"type": "bar", "y": names, "x": [_share(rows[n], emotion) for n in names],
             "name": emotion, "orientation": "h", "marker": {"color": EMOTION_COLORS[emotion]}}
            for emotion in EMOTIONS]
    return {"data": data, "layout": plain_layout(title, "mix", theme, barmode="stack", xaxis={
        "title": {"text": "share of faces"}, "range": [0, 1], "tickformat": ".0%"})}


def _share(shares: Mapping[str, float], emotion: str) -> float:
    total = sum(shares.values())
    return shares.get(emotion, 0.0) / total if total > 0 else 0.0


def _seconds_layout(title: str, yaxis: dict) -> dict:
    """A session chart's layout: x = seconds since the session started."""
    return plain_layout(title, title, "light", xaxis={"title": {"text": "seconds"}}, yaxis=yaxis)


def session_sentiment(timeline: Sequence[Mapping[str, Any]],
                      title: str = "Sentiment per second") -> dict:
    """A session's sentiment timeline, x = seconds since the session started. The session
    charts are plain plotly dicts (see sparkline): the drill-down redraws a live session's
    hour every refresh."""
    if not timeline:
        return plain_empty("no seconds recorded for this session", title)
    line = {"type": "scatter", "x": np.array([row["t"] for row in timeline]),
            "y": _floats(row["sentiment"] for row in timeline), "mode": "lines+markers",
            "name": "sentiment", "connectgaps": False, "marker": {"size": 4}}
    return {"data": [line], "layout": _seconds_layout(
        title, {"title": {"text": "sentiment"}, "range": SENTIMENT_RANGE, "zeroline": True})}


def emotion_area(timeline: Sequence[Mapping[str, Any]],
                 title: str = "Emotions per second") -> dict:
    """Stacked-area chart of the mean emotion probabilities in each second.

    Seconds without faces are left out (their probabilities are undefined, not zero), so
    the stack spans them instead of collapsing to the axis.
    """
    with_faces = [row for row in timeline if row.get("faces")]
    if not with_faces:
        return plain_empty("no faces in this session", title)
    seconds = np.array([row["t"] for row in with_faces])
    data = [{"type": "scatter", "x": seconds,
             "y": _floats(row["emotions"].get(emotion, 0.0) for row in with_faces),
             "name": emotion, "mode": "lines", "stackgroup": "emotions",
             "line": {"width": 0.5, "color": EMOTION_COLORS[emotion]}} for emotion in EMOTIONS]
    return {"data": data, "layout": _seconds_layout(
        title, {"title": {"text": "mean probability"}, "range": [0, 1.02]})}


def people_timeline(timeline: Sequence[Mapping[str, Any]],
                    title: str = "Faces and people per second") -> dict:
    """Faces detected and distinct tracks (people) in each second."""
    if not timeline:
        return plain_empty("no seconds recorded for this session", title)
    seconds = np.array([row["t"] for row in timeline])
    data = [{"type": "bar", "x": seconds, "y": _floats(row["faces"] for row in timeline),
             "name": "faces", "marker": {"color": OKABE_ITO["sky_blue"]}},
            {"type": "scatter", "x": seconds,
             "y": _floats(row.get("people", 0) for row in timeline), "name": "people",
             "mode": "lines", "line": {"color": OKABE_ITO["blue"]}}]
    return {"data": data, "layout": _seconds_layout(
        title, {"title": {"text": "count"}, "rangemode": "tozero"})}


def emotion_totals(totals: Mapping[str, float], title: str = "Emotion distribution") -> dict:
    """Bar chart of a session's summed probabilities per emotion, as shares."""
    total = sum(totals.values())
    if total <= 0:
        return plain_empty("no faces detected", title)
    bars = {"type": "bar", "x": list(EMOTIONS), "y": [totals.get(e, 0.0) / total for e in EMOTIONS],
            "marker": {"color": [EMOTION_COLORS[e] for e in EMOTIONS]}}
    return {"data": [bars], "layout": plain_layout(title, title, "light", yaxis={
        "title": {"text": "share"}, "tickformat": ".0%", "range": [0, 1]})}


def session_figures(report: Mapping[str, Any]) -> dict[str, dict]:
    """The drill-down charts of one session report, by name (dashboard and HTML report)."""
    timeline = report.get("timeline") or []
    return {
        "sentiment": session_sentiment(timeline),
        "emotions": emotion_area(timeline),
        "people": people_timeline(timeline),
        "distribution": emotion_totals(report.get("emotion_totals") or {}),
    }


def traffic(rows: Sequence[Mapping[str, Any]], title: str = "Faces and people") -> go.Figure:
    """Faces counted and the peak of distinct people in one second, per period bucket
    (an hour of a day report, a day of a week report); rows carry ``start`` (a time)."""
    if not any(row.get("frames") for row in rows):
        return empty_figure("no frames in this period", title)
    starts = _times([row["start"] for row in rows])
    fig = go.Figure([
        go.Bar(x=starts, y=_floats(row["faces"] for row in rows), name="faces",
               marker_color=OKABE_ITO["sky_blue"]),
        go.Scatter(x=starts, y=_floats(row.get("peak_people", 0) for row in rows),
                   name="peak people", mode="lines+markers", yaxis="y2",
                   line=dict(color=OKABE_ITO["blue"])),
    ])
    # People are a handful while faces run to thousands: each gets its own axis.
    fig.update_layout(yaxis=dict(title="faces", rangemode="tozero"),
                      yaxis2=dict(title="people", overlaying="y", side="right",
                                  rangemode="tozero", showgrid=False))
    return _base_layout(fig, title)


def period_figures(report: Mapping[str, Any]) -> dict[str, go.Figure | dict]:
    """The charts of one camera's day or week report (moodstream.period_report), by name."""
    rows = report.get("timeline") or []
    step = "hour" if report.get("period") == "day" else "day"
    points = [(row["start"], row["sentiment"]) for row in rows]
    mix = {s["session_id"]: s.get("emotion_totals") or {} for s in report.get("sessions") or []}
    sentiment = sentiment_trend({report.get("camera_id") or "camera": points},
                                title=f"Sentiment per {step}", markers=True)
    return {
        "sentiment": sentiment,
        "traffic": traffic(rows, title=f"Faces and peak people per {step}"),
        "distribution": emotion_totals(report.get("emotion_totals") or {}),
        "sessions": emotion_mix(mix, title="Emotion mix per session"),
    }
