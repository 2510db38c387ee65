"""/ : the live overview. KPI tiles (customer-sentiment index and its change against the last
hour, people in view, faces per minute, open alerts), a grid of camera cards (15-minute
sparkline, dominant emotion, people, alert state, purpose and notice; the GRID_LIMIT most
relevant unless "show all" is ticked), then the trend lines, emotion mix and details of the
cameras shown, and the active sessions. Clear loading, empty and "Redis
unreachable" states.

Numbers come from dashboard.kpis (pure) over DashboardData.live(), the reader shared by every
viewer for one refresh interval; the page itself is built once per tick, theme, trend window
and grid size, and served to every viewer of that tick.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html, no_update

from dashboard import kpis as K
from dashboard import layout as ui
from dashboard.callbacks import theme_of
from dashboard.data import DashboardData, DataUnavailable, LiveSnapshot
from dashboard.pages import GRAPH_CONFIG
from moodstream import figures

TREND_WINDOWS = ((60, "1 min"), (300, "5 min"), (900, "15 min"))
GRID_LIMIT = 24  # cards drawn unless "show all": a sparkline each
_SPARK_CONFIG = {"displayModeBar": False, "responsive": True}


def layout(**_kwargs) -> html.Div:
    return html.Div(id="page-overview", children=[
        html.Div(id="overview-state", className="state-banner",
                 children=dbc.Alert("Loading live data…", color="secondary", className="py-2")),
        dbc.Row(id="kpi-tiles", className="g-3", children=kpi_tiles(None)),
        html.Div(className="d-flex gap-3 align-items-baseline mt-4 mb-2", children=[
            html.H5("Cameras", className="mb-0"), html.Span(id="camera-grid-count"),
            dcc.Checklist(id="camera-grid-all", options=[{"label": " show all", "value": "all"}],
                          value=[], inline=True)]),
        dbc.Row(id="camera-grid", className="g-3"),
        dbc.Card(className="mt-4", body=True, children=[
            html.Div([html.Label("Trend window: ", className="me-2"),
                      dcc.RadioItems(id="trend-window", value=300, inline=True,
                                     inputClassName="me-1", labelClassName="me-3",
                                     options=[{"label": label, "value": s}
                                              for s, label in TREND_WINDOWS])]),
            dcc.Graph(id="trend-graph", config=GRAPH_CONFIG),
        ]),
        dbc.Card(dcc.Graph(id="mix-graph", config=GRAPH_CONFIG), body=True, className="mt-3"),
        # The detailed table (tests/moodstream/test_demo reads its rows).
        html.H5("Camera details", className="mt-4"),
        html.Div(id="cameras-table"),
        html.H5("Active sessions", className="mt-4"),
        html.Div(id="active-sessions", className="mb-4"),
    ])


dash.register_page(__name__, layout=layout, path="/", name="Live overview",
                   title="moodstream · overview", order=0)


def _tile(label: str, value: str, sub: str, tile_id: str) -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([
        html.Div(label, className="kpi-label"),
        html.Div(value, id=tile_id, className="kpi-value"),
        html.Div(sub, className="kpi-sub"),
    ]), className="h-100"), xs=6, lg=3)


def kpi_tiles(kpis: K.Kpis | None) -> list:
    """The four tiles; None = still loading."""
    if kpis is None:
        return [_tile(label, "…", "loading", tile_id) for label, tile_id in (
            ("Customer sentiment index", "kpi-index"), ("People in view", "kpi-people"),
            ("Faces per minute", "kpi-faces"), ("Open alerts", "kpi-alerts"))]
    if kpis.index_change is None:
        change = "no faces in the last hour" if kpis.index is None else "no hourly baseline"
    else:
        change = f"{kpis.index_change:+.0f} vs last hour" if round(kpis.index_change) else \
            "±0 vs last hour"
    return [
        _tile("Customer sentiment index", "—" if kpis.index is None else f"{kpis.index:.0f}",
              f"0–100, 50 = neutral · {change}", "kpi-index"),
        _tile("People in view", str(kpis.people),
              f"on {kpis.live_cameras} of {kpis.cameras} cameras", "kpi-people"),
        _tile("Faces per minute", str(kpis.faces_per_min), "faces detected, last 60 s",
              "kpi-faces"),
        _tile("Open alerts", str(kpis.open_alerts),
              "negative-sentiment alerts" if kpis.open_alerts else "all calm", "kpi-alerts"),
    ]


def _notice(notice: bool | None) -> str:
    return {True: "notice posted", False: "no notice posted"}.get(notice, "notice not set")


def camera_card(card: K.CameraCard, theme: str, now: float) -> dbc.Col:
    status = (dbc.Badge("ALERT", color="danger", className="camera-alert") if card.alert else
              dbc.Badge("live", color="success") if card.live else
              dbc.Badge(f"idle · {ui.fmt_age(card.last_seen, now)}", color="secondary"))
    dominant = html.Span([html.Span(className="emotion-dot", style={
        "background": figures.EMOTION_COLORS.get(card.dominant or "", "#999")}),
        card.dominant or "—"], className="camera-dominant")
    body = [
        html.Div(card.purpose or "purpose not set", className="camera-purpose"),
        html.Div(_notice(card.notice), className="camera-purpose camera-notice"),
        *([html.Div(f"sentiment {card.suppressed}", className="camera-purpose camera-suppressed")]
          if card.suppressed else []),
        dcc.Graph(figure=figures.sparkline(card.spark, theme), config=_SPARK_CONFIG,
                  className="camera-spark", style={"height": "70px"}),
        html.Div(className="camera-stats", children=[
            html.Span(["index ", html.B("—" if card.index is None else f"{card.index:.0f}")],
                      className="camera-index"),
            dominant,
            html.Span(f"{card.people} {'person' if card.people == 1 else 'people'}",
                      className="camera-people"),
            ui.session_link(card.session_id) if card.session_id else html.Span("no session"),
        ]),
    ]
    # Plain Bootstrap card classes: dbc.Card takes no data-* attribute, tests find cards by it.
    return dbc.Col(html.Div([html.Div([html.Span(card.camera_id, className="fw-semibold"), status],
                                      className="card-header"),
                             html.Div(body, className="card-body")],
                            className="card camera-card h-100" + (" alerting" if card.alert else ""),
                            **{"data-camera": card.camera_id}),
                   xs=12, sm=6, lg=4, xxl=3)


def register(app: Dash, data: DashboardData, _settings) -> None:
    @app.callback(Output("overview-state", "children"), Output("kpi-tiles", "children"),
                  Output("camera-grid-count", "children"),
                  Output("camera-grid", "children"), Output("trend-graph", "figure"),
                  Output("mix-graph", "figure"), Output("active-sessions", "children"),
                  Output("cameras-table", "children"),
                  Input("tick", "n_intervals"), Input("trend-window", "value"),
                  Input("theme-switch", "value"), Input("camera-grid-all", "value"))
    def overview(_n, window_s, dark, show_all):
        theme, show_all = theme_of(dark), bool(show_all)
        window_s = window_s if window_s in dict(TREND_WINDOWS) else 300  # bounds the cache
        try:
            return data.shared(f"overview:{theme}:{window_s}:{show_all}",
                               lambda: _render(data.live(), theme, window_s, show_all))
        except DataUnavailable:
            return (dbc.Alert("Redis unreachable: showing the last values read.", color="danger",
                              id="overview-unreachable", className="py-2"),
                    *[no_update] * 7)


def _render(snap: LiveSnapshot, theme: str, window_s: int, show_all: bool) -> tuple:
    """The page's outputs for one snapshot (shared by every viewer: not to be modified)."""
    state = None if snap.cameras else dbc.Alert(
        "No camera has reported yet: cards appear with a camera's first frame.",
        color="info", id="no-cameras", className="py-2")
    cards = K.camera_cards(snap.cameras, snap.alerts, snap.series, snap.now,
                           None if show_all else GRID_LIMIT)
    shown = {card.camera_id for card in cards}
    count = f"{len(cards)} of {len(snap.cameras)}" if len(cards) < len(snap.cameras) else ""
    mix = {c.camera_id: c.probs for c in snap.cameras
           if c.camera_id in shown and K.is_live(c, snap.now)}
    series = {camera: points for camera, points in snap.series.items() if camera in shown}
    trend = K.trend_window(series, snap.cameras, snap.now, window_s)
    return (state, kpi_tiles(K.kpis(snap.cameras, snap.alerts, snap.series, snap.now)), count,
            [camera_card(card, theme, snap.now) for card in cards],
            figures.sentiment_trend(trend, f"Sentiment, last {window_s // 60} min", theme),
            figures.emotion_mix(mix, theme=theme), ui.sessions_table(snap.active, "active"),
            ui.cameras_table([c for c in snap.cameras if c.camera_id in shown], snap.alerts,
                             snap.now))
