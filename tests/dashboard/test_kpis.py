"""The overview's numbers (dashboard.kpis) on plain data, and the sparkline builder."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import plotly.graph_objects as go

from dashboard import kpis as K
from dashboard.data import CameraLive, utc
from moodstream import figures

NOW = 1_767_225_600.0


def _series(values, end: float = NOW, faces: int = 2) -> list:
    """Per-second points ending at `end`: None = a second without faces."""
    start = utc(end) - timedelta(seconds=len(values) - 1)
    return [(start + timedelta(seconds=i), v, 0 if v is None else faces)
            for i, v in enumerate(values)]


def _cam(camera_id, people=2, last_seen=NOW, session="s", alert=False, purpose=None):
    return CameraLive(camera_id, session, last_seen, 0.0, 2, people, "happy", alert=alert,
                      purpose=purpose)


def test_sentiment_index_scales_mean_sentiment_to_0_100():
    assert [K.sentiment_index(m) for m in (-1.0, 0.0, 0.5, 1.0, None)] == [0.0, 50.0, 75.0, 100.0, None]
    assert K.sentiment_index(3.0) == 100.0  # clamped


def test_kpis_index_change_people_faces_alerts():
    # cam-a: an hour at -0.5, its last 5 minutes at +0.5; cam-b: silent for 10 min (not live).
    hour = [-0.5] * 3299 + [0.5] * 301  # both windows include their first second
    series = {"cam-a": _series(hour), "cam-b": _series([0.9] * 60, end=NOW - 600)}
    cams = [_cam("cam-a", people=3), _cam("cam-b", people=4, last_seen=NOW - 600)]
    kpis = K.kpis(cams, {"cam-a": {}}, series, NOW)
    assert kpis.index == 75.0  # mean +0.5 over the last 5 min
    # The hour: the last 3600 seconds of the series (the reader holds 3599 s + now).
    hour_index = K.sentiment_index(sum(hour) / len(hour))
    assert abs(kpis.index_change - (75.0 - hour_index)) <= 0.2 and kpis.index_change > 40
    assert (kpis.people, kpis.open_alerts, kpis.live_cameras, kpis.cameras) == (3, 1, 1, 2)
    assert kpis.faces_per_min == 2 * 61  # seconds NOW-60 .. NOW, two faces each


def test_gaps_are_not_zeros_and_no_faces_means_no_index():
    series = {"cam-a": _series([1.0, None, None, 1.0])}
    assert K.kpis([_cam("cam-a")], {}, series, NOW).index == 100.0
    empty = K.kpis([_cam("cam-a")], {}, {}, NOW)
    assert (empty.index, empty.index_change, empty.faces_per_min) == (None, None, 0)
    assert K.kpis([], {}, {}, NOW).cameras == 0


def test_camera_cards_live_first_with_purpose_alert_and_15_minute_sparkline():
    series = {"cam-a": _series([0.2] * 1200)}
    cams = [_cam("cam-x", last_seen=NOW - 3600, purpose="entrance"),
            _cam("cam-a", alert=True)]
    cards = K.camera_cards(cams, {}, series, NOW)
    assert [c.camera_id for c in cards] == ["cam-a", "cam-x"]
    live, idle = cards
    assert live.alert and live.index == 60.0 and len(live.spark) == K.SPARK_WINDOW_S + 1
    assert (idle.live, idle.index, idle.people, idle.purpose) == (False, None, 0, "entrance")


def test_trend_window_cuts_the_hour():
    series = {"cam-a": _series([0.1] * 600)}
    trend = K.trend_window(series, [_cam("cam-a", session="s1")], NOW, 60)
    assert list(trend) == ["cam-a · s1"] and len(trend["cam-a · s1"]) == 61


def test_sparkline_and_palette():
    fig = figures.sparkline([(utc(NOW), 0.5), (utc(NOW + 1), None)], theme="dark")
    [line] = fig["data"]
    np.testing.assert_array_equal(line["y"], [0.5, np.nan])  # NaN: a gap, not a zero
    assert line["x"] == [utc(NOW).isoformat(timespec="seconds"),
                         utc(NOW + 1).isoformat(timespec="seconds")]
    assert line["line"]["color"] == figures.OKABE_ITO["sky_blue"]  # the dark theme's line
    assert fig["layout"]["height"] == 70 and fig["layout"]["shapes"][0]["y0"] == 0
    # A plain dict that plotly accepts as it is (dcc.Graph, chart_images)
    assert go.Figure(fig).data[0].y[0] == 0.5
    blank = figures.sparkline([], theme="light")
    assert blank["data"] == []
    assert blank["layout"]["annotations"][0]["text"] == "no faces in the last 15 min"


def test_cards_are_the_most_relevant_first_and_limited():
    cams = [_cam("idle", last_seen=NOW - 3600), _cam("live"),
            _cam("alerting-idle", last_seen=NOW - 3600, alert=True), _cam("live-2")]
    cards = K.camera_cards(cams, {}, {}, NOW, limit=3)
    assert [c.camera_id for c in cards] == ["alerting-idle", "live", "live-2"]
    assert len(K.camera_cards(cams, {}, {}, NOW)) == 4
    # Okabe-Ito: colour-blind-safe, one distinct colour per emotion, shared with reports.
    assert set(figures.EMOTION_COLORS.values()) <= set(figures.OKABE_ITO.values())
    assert len(set(figures.EMOTION_COLORS.values())) == len(figures.EMOTION_COLORS)
