"""Pure figure builders shared by the dashboard and the HTML report: data in, figure out.

Nothing here touches Redis, files or the clock, so every builder is unit-testable with
plain lists and dicts. Timelines are the `timeline` entries of a session report
(moodstream.reports.build_report): ``{t, frames, faces, people, sentiment, emotions{...}}``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from moodstream.emotions import EMOTIONS

# One colour per emotion everywhere, so a chart reads the same on every page.
EMOTION_COLORS: Mapping[str, str] = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#2ca02c",
    "neutral": "#7f7f7f",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
}
SENTIMENT_RANGE = (-1.05, 1.05)
_MARGIN = dict(l=50, r=20, t=40, b=40)


def _floats(values) -> np.ndarray:
    """None -> NaN (a gap). numpy arrays also spare plotly its slow per-element validation
    and travel to the browser as compact typed arrays: this is the live path."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _times(values) -> np.ndarray:
    return np.array(values, dtype="datetime64[ms]")


def _base_layout(fig: go.Figure, title: str, revision: str | None = None) -> go.Figure:
    # uirevision keeps the user's zoom and legend clicks across the periodic refresh.
    fig.update_layout(title=title, template="plotly_white", margin=_MARGIN,
                      uirevision=revision or title, legend=dict(orientation="h", y=-0.2))
    return fig


def empty_figure(message: str, title: str = "") -> go.Figure:
    """A blank chart that says why it is blank (no data yet, Redis unreachable, ...)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font=dict(size=14, color="#666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _base_layout(fig, title)


def sentiment_trend(series: Mapping[str, Sequence[tuple[Any, float | None]]],
                    title: str = "Sentiment trend") -> go.Figure:
    """One sentiment line per camera/session; series maps a label to (x, sentiment) points.

    A None sentiment (a second without faces) leaves a gap instead of a fake zero.
    """
    if not any(series.values()):
        return empty_figure("no sentiment in this window yet", title)
    fig = go.Figure()
    for label, points in series.items():
        fig.add_trace(go.Scatter(x=_times([p[0] for p in points]),
                                 y=_floats([p[1] for p in points]),
                                 mode="lines", name=label, connectgaps=False))
    fig.update_yaxes(title="sentiment", range=SENTIMENT_RANGE, zeroline=True)
    return _base_layout(fig, title, revision="trend")


def emotion_mix(mix: Mapping[str, Mapping[str, float]], title: str = "Emotion mix") -> go.Figure:
    """Stacked horizontal bars: for each camera (or session) the share of each emotion."""
    rows = {name: shares for name, shares in mix.items() if sum(shares.values()) > 0}
    if not rows:
        return empty_figure("no faces seen yet", title)
    names = list(rows)
    fig = go.Figure()
    for emotion in EMOTIONS:
        shares = [_share(rows[n], emotion) for n in names]
        fig.add_trace(go.Bar(y=names, x=shares, name=emotion, orientation="h",
                             marker_color=EMOTION_COLORS[emotion]))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="share of faces", range=[0, 1], tickformat=".0%")
    return _base_layout(fig, title, revision="mix")


def _share(shares: Mapping[str, float], emotion: str) -> float:
    total = sum(shares.values())
    return shares.get(emotion, 0.0) / total if total > 0 else 0.0


def session_sentiment(timeline: Sequence[Mapping[str, Any]],
                      title: str = "Sentiment per second") -> go.Figure:
    """A session's sentiment timeline, x = seconds since the session started."""
    if not timeline:
        return empty_figure("no seconds recorded for this session", title)
    fig = go.Figure(go.Scatter(x=np.array([row["t"] for row in timeline]),
                               y=_floats(row["sentiment"] for row in timeline),
                               mode="lines+markers", name="sentiment", connectgaps=False,
                               marker=dict(size=4)))
    fig.update_xaxes(title="seconds")
    fig.update_yaxes(title="sentiment", range=SENTIMENT_RANGE, zeroline=True)
    return _base_layout(fig, title)


def emotion_area(timeline: Sequence[Mapping[str, Any]],
                 title: str = "Emotions per second") -> go.Figure:
    """Stacked-area chart of the mean emotion probabilities in each second.

    Seconds without faces are left out (their probabilities are undefined, not zero), so
    the stack spans them instead of collapsing to the axis.
    """
    with_faces = [row for row in timeline if row.get("faces")]
    if not with_faces:
        return empty_figure("no faces in this session", title)
    seconds = np.array([row["t"] for row in with_faces])
    fig = go.Figure()
    for emotion in EMOTIONS:
        fig.add_trace(go.Scatter(x=seconds, y=_floats(row["emotions"].get(emotion, 0.0)
                                                      for row in with_faces),
                                 name=emotion, mode="lines", stackgroup="emotions",
                                 line=dict(width=0.5, color=EMOTION_COLORS[emotion])))
    fig.update_xaxes(title="seconds")
    fig.update_yaxes(title="mean probability", range=[0, 1.02])
    return _base_layout(fig, title)


def people_timeline(timeline: Sequence[Mapping[str, Any]],
                    title: str = "Faces and people per second") -> go.Figure:
    """Faces detected and distinct tracks (people) in each second."""
    if not timeline:
        return empty_figure("no seconds recorded for this session", title)
    seconds = np.array([row["t"] for row in timeline])
    fig = go.Figure([
        go.Bar(x=seconds, y=_floats(row["faces"] for row in timeline), name="faces",
               marker_color="#9ecae1"),
        go.Scatter(x=seconds, y=_floats(row.get("people", 0) for row in timeline), name="people",
                   mode="lines", line=dict(color="#08519c")),
    ])
    fig.update_xaxes(title="seconds")
    fig.update_yaxes(title="count", rangemode="tozero")
    return _base_layout(fig, title)


def emotion_totals(totals: Mapping[str, float], title: str = "Emotion distribution") -> go.Figure:
    """Bar chart of a session's summed probabilities per emotion, as shares."""
    total = sum(totals.values())
    if total <= 0:
        return empty_figure("no faces detected", title)
    fig = go.Figure(go.Bar(x=list(EMOTIONS), y=[totals.get(e, 0.0) / total for e in EMOTIONS],
                           marker_color=[EMOTION_COLORS[e] for e in EMOTIONS]))
    fig.update_yaxes(title="share", tickformat=".0%", range=[0, 1])
    return _base_layout(fig, title)


def session_figures(report: Mapping[str, Any]) -> dict[str, go.Figure]:
    """The drill-down charts of one session report, by name (dashboard and HTML report)."""
    timeline = report.get("timeline") or []
    return {
        "sentiment": session_sentiment(timeline),
        "emotions": emotion_area(timeline),
        "people": people_timeline(timeline),
        "distribution": emotion_totals(report.get("emotion_totals") or {}),
    }
