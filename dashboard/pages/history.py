"""/history: sentiment and people over time for the site or picked cameras, hour-of-day x
weekday heatmaps of sentiment and traffic, and every camera compared, over a chosen range
(last hour, today, 7 days, 30 days, custom UTC dates).

Numbers come from the hourly rollups (dashboard.history_data, through the shared reader);
figures from moodstream.history_figures (pure). Rollups move at most once per aggregator
pass, so the page follows the shell's tick only every REFRESH_S.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard.callbacks import theme_of
from dashboard.data import DashboardData, DataUnavailable
from dashboard.history_data import (MAX_CAMERA_LINES, RANGES, SITE, HistoryData, RangeError,
                                    figures_for, resolve_range)
from dashboard.pages import GRAPH_CONFIG

REFRESH_S = 30.0
OUTPUTS = ("history-state", "history-summary", "history-trend", "history-heat-sentiment",
           "history-heat-traffic", "history-compare", "history-cameras")


def layout(**_kwargs) -> html.Div:
    return html.Div(id="page-history", children=[
        dcc.Store(id="history-refresh"),
        html.H3("History"),
        dbc.Card(body=True, className="mb-3", children=dbc.Row(className="g-3 align-items-end", children=[
            dbc.Col(xs=12, lg=5, children=[
                html.Label("Range", className="small text-body-secondary d-block"),
                dcc.RadioItems(id="history-range", value="today", inline=True,
                               inputClassName="me-1", labelClassName="me-3",
                               options=[{"label": label, "value": key}
                                        for key, label in RANGES.items()])]),
            dbc.Col(xs=12, md=6, lg=3, id="history-custom-col", children=[
                html.Label("Custom dates (UTC)", className="small text-body-secondary d-block"),
                dcc.DatePickerRange(id="history-dates", display_format="YYYY-MM-DD",
                                    clearable=True, disabled=True, start_date_id="history-start",
                                    end_date_id="history-end")]),
            dbc.Col(xs=12, md=6, lg=4, children=[
                html.Label("Cameras", className="small text-body-secondary d-block"),
                dcc.Dropdown(id="history-cameras", multi=True, placeholder=f"{SITE} (site)",
                             maxHeight=240)]),
        ])),
        html.Div(id="history-state"),
        html.P(id="history-summary", className="small"),
        dcc.Graph(id="history-trend", config=GRAPH_CONFIG),
        dbc.Row(className="g-3", children=[
            dbc.Col(dcc.Graph(id="history-heat-sentiment", config=GRAPH_CONFIG), xs=12, xl=6),
            dbc.Col(dcc.Graph(id="history-heat-traffic", config=GRAPH_CONFIG), xs=12, xl=6),
        ]),
        dcc.Graph(id="history-compare", config=GRAPH_CONFIG),
    ])


dash.register_page(__name__, layout=layout, path="/history", name="History",
                   title="moodstream · history", order=2)


def register(app: Dash, data: DashboardData, settings) -> None:
    history = HistoryData(data)
    every_ticks = max(1, round(REFRESH_S / settings.refresh_s))  # the shell's tick period

    @app.callback(*[Output(i, "children") for i in OUTPUTS[:2]],
                  *[Output(i, "figure") for i in OUTPUTS[2:6]],
                  Output("history-cameras", "options"),
                  Input("history-refresh", "data"), Input("history-range", "value"),
                  Input("history-dates", "start_date"), Input("history-dates", "end_date"),
                  Input("history-cameras", "value"), Input("theme-switch", "value"),
                  State("history-cameras", "options"))
    def show(_refresh, range_key, start_date, end_date, cameras, dark, shown_options):
        try:
            rng = resolve_range(range_key or "today", data.clock(), start_date, end_date)
        except RangeError as exc:
            return (dbc.Alert(str(exc), color="warning", className="py-2", id="history-invalid"),
                    *[no_update] * 6)
        try:
            options = history.cameras()
            view = history.view(rng, tuple(cameras or ()))
        except DataUnavailable:
            return (dbc.Alert("Redis unreachable: showing the last values read.",
                              color="danger", className="py-2", id="history-unreachable"),
                    *[no_update] * 6)
        state = None if options else dbc.Alert(
            "No hourly rollups yet: the aggregator writes them every 30 s, or run "
            "`moodstream backfill-rollups` to build them from past sessions.",
            color="info", className="py-2", id="history-empty")
        if len(cameras or ()) > MAX_CAMERA_LINES:
            state = dbc.Alert(f"Showing the first {MAX_CAMERA_LINES} cameras picked.",
                              color="secondary", className="py-2")
        return (state, *figures_for(view, theme_of(dark)),
                no_update if shown_options == options else options)

    @app.callback(Output("history-refresh", "data"), Input("tick", "n_intervals"))
    def refresh(n):
        """Every every_ticks ticks, a new value: the charts' only timer input. (Hanging them
        on the tick itself would let a 2-s tick supersede a slower first draw.)"""
        if (n or 0) % every_ticks:
            raise PreventUpdate
        return (n or 0) // every_ticks

    @app.callback(Output("history-dates", "disabled"), Input("history-range", "value"))
    def custom_dates(range_key):
        return range_key != "custom"

