"""/ : the live overview of every camera."""

from __future__ import annotations

import dash
from dash import Dash, Input, Output, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import layout as ui
from dashboard.data import DashboardData, DataUnavailable
from dashboard.pages import GRAPH_CONFIG
from moodstream import figures

TREND_WINDOWS = ((60, "1 min"), (300, "5 min"), (900, "15 min"))


def layout(**_kwargs) -> html.Div:
    return html.Div(id="page-overview", children=[
        html.Div(id="people-total", style={"fontSize": "1.2em", "margin": "0.5em 0"}),
        html.Div(id="cameras-table"),
        html.Div([html.Label("Trend window: "),
                  dcc.RadioItems(id="trend-window", value=300, inline=True,
                                 options=[{"label": label, "value": s}
                                          for s, label in TREND_WINDOWS])]),
        dcc.Graph(id="trend-graph", config=GRAPH_CONFIG),
        dcc.Graph(id="mix-graph", config=GRAPH_CONFIG),
        html.H3("Active sessions"),
        html.Div(id="active-sessions"),
    ])


dash.register_page(__name__, layout=layout, path="/", name="Live overview",
                   title="moodstream · overview", order=0)


def register(app: Dash, data: DashboardData, _settings) -> None:
    @app.callback(Output("cameras-table", "children"), Output("people-total", "children"),
                  Output("trend-graph", "figure"), Output("mix-graph", "figure"),
                  Output("active-sessions", "children"),
                  Input("tick", "n_intervals"), Input("trend-window", "value"))
    def overview(_n, window_s):
        window_s = int(window_s or 300)
        try:
            cameras = data.cameras()
            alerts = data.open_alerts()
            series = data.trend(cameras, window_s)
            active = data.active_sessions()
        except DataUnavailable:
            raise PreventUpdate from None
        mix = {c.camera_id: c.probs for c in cameras if c.session_id}
        return (ui.cameras_table(cameras, alerts, data.clock()), ui.people_total(cameras),
                figures.sentiment_trend(series, f"Sentiment, last {window_s // 60} min"),
                figures.emotion_mix(mix), ui.sessions_table(active, "active"))
