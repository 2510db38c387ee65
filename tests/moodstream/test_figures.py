"""The pure figure builders: data in, plotly figure out."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import plotly.graph_objects as go

from moodstream import figures
from moodstream.emotions import EMOTIONS


def _timeline(n: int = 5) -> list[dict]:
    rows = []
    for t in range(n):
        faces = 0 if t == 2 else 2
        emotions = {e: 0.0 for e in EMOTIONS}
        if faces:
            emotions.update(happy=0.6, neutral=0.4)
        rows.append({"t": t, "frames": 5, "faces": faces, "people": faces,
                     "sentiment": 0.6 if faces else None, "emotions": emotions})
    return rows


def test_sentiment_trend_one_line_per_series_with_gaps_kept():
    x = [datetime(2026, 1, 1, 12, 0, s) for s in range(3)]
    fig = go.Figure(figures.sentiment_trend({"cam-a · s1": list(zip(x, [0.5, None, -0.2])),
                                             "cam-b · s2": list(zip(x, [0.1, 0.2, 0.3]))}))
    assert [t.name for t in fig.data] == ["cam-a · s1", "cam-b · s2"]
    np.testing.assert_array_equal(fig.data[0].y, [0.5, np.nan, -0.2])  # NaN: a gap
    assert fig.data[0].connectgaps is False
    assert fig.data[0].x[0] == np.datetime64("2026-01-01T12:00:00")
    assert tuple(fig.layout.yaxis.range) == figures.SENTIMENT_RANGE


def test_empty_inputs_give_an_annotated_blank_chart():
    for fig in (figures.sentiment_trend({}), figures.sentiment_trend({"a": []}),
                figures.emotion_mix({}), figures.session_sentiment([]),
                figures.emotion_area([]), figures.people_timeline([]),
                figures.emotion_totals({e: 0.0 for e in EMOTIONS})):
        fig = go.Figure(fig)  # the live charts are plain dicts
        assert len(fig.data) == 0 and fig.layout.annotations[0].text


def test_emotion_mix_stacks_normalised_shares_per_camera():
    fig = go.Figure(figures.emotion_mix({"cam-a": {"happy": 3.0, "angry": 1.0},
                                         "cam-b": {"neutral": 0.5}, "cam-idle": {}}))
    assert [t.name for t in fig.data] == list(EMOTIONS)
    by_name = {t.name: t for t in fig.data}
    assert by_name["happy"].x == (0.75, 0.0) and by_name["angry"].x == (0.25, 0.0)
    assert by_name["neutral"].x == (0.0, 1.0)
    assert by_name["happy"].y == ("cam-a", "cam-b")  # a camera with no faces is left out
    assert fig.layout.barmode == "stack"
    assert by_name["happy"].marker.color == figures.EMOTION_COLORS["happy"]


def test_session_charts_follow_the_timeline():
    charts = {name: go.Figure(fig) for name, fig in figures.session_figures(
        {"timeline": _timeline(), "emotion_totals": {"happy": 6.0, "neutral": 2.0}}).items()}
    assert set(charts) == {"sentiment", "emotions", "people", "distribution"}
    sentiment = charts["sentiment"].data[0]
    assert list(sentiment.x) == [0, 1, 2, 3, 4] and np.isnan(sentiment.y[2])
    area = charts["emotions"]
    assert {t.stackgroup for t in area.data} == {"emotions"} and len(area.data) == 7
    happy = next(t for t in area.data if t.name == "happy")
    assert list(happy.x) == [0, 1, 3, 4] and list(happy.y) == [0.6] * 4  # faceless second skipped
    faces, people = charts["people"].data
    assert list(faces.y) == [2, 2, 0, 2, 2] and list(people.y) == [2, 2, 0, 2, 2]
    shares = dict(zip(charts["distribution"].data[0].x, charts["distribution"].data[0].y))
    assert shares["happy"] == 0.75 and shares["neutral"] == 0.25 and shares["sad"] == 0.0


def test_refresh_keeps_user_zoom():
    a = figures.sentiment_trend({"x": [(1, 0.1)]}, title="Sentiment, last 1 min")
    b = figures.sentiment_trend({"x": [(1, 0.1)]}, title="Sentiment, last 5 min")
    assert a["layout"]["uirevision"] == b["layout"]["uirevision"] == "trend"
