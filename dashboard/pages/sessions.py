"""/sessions: every session, newest first, filtered by camera, start date and mean sentiment."""

from __future__ import annotations

import dash
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import layout as ui
from dashboard.callbacks import session_filter
from dashboard.data import DashboardData, DataUnavailable


def _filter(label: str, control, width: str = "12em") -> html.Div:
    return html.Div([html.Label(label, style={"fontSize": "0.85em", "color": "#555"}), control], style={"width": width})


def layout(**_kwargs) -> html.Div:
    return html.Div(id="page-sessions", children=[
        html.H3("Sessions"),
        html.Div(className="filters", style={"display": "flex", "gap": "1em", "flexWrap": "wrap",
                                           "alignItems": "end"}, children=[
            _filter("Camera", dcc.Dropdown(id="filter-camera", placeholder="all cameras",
                                           clearable=True), "14em"),
            _filter("Started (UTC dates)", dcc.DatePickerRange(
                id="filter-dates", clearable=True, display_format="YYYY-MM-DD"), "24em"),
            _filter("Min mean sentiment", dcc.Input(
                id="filter-min", type="number", min=-1, max=1, step="any",
                placeholder="-1 … 1", debounce=True)),
            _filter("Max mean sentiment", dcc.Input(
                id="filter-max", type="number", min=-1, max=1, step="any",
                placeholder="-1 … 1", debounce=True)),
        ]),
        html.Div(id="sessions-table"),
    ])


dash.register_page(__name__, layout=layout, path="/sessions", name="Sessions",
                   title="moodstream · sessions", order=1)


def register(app: Dash, data: DashboardData, settings) -> None:
    limit = settings.session_list_limit

    @app.callback(Output("filter-camera", "options"), Output("sessions-table", "children"),
                  Input("tick", "n_intervals"), Input("filter-camera", "value"),
                  Input("filter-dates", "start_date"), Input("filter-dates", "end_date"),
                  Input("filter-min", "value"), Input("filter-max", "value"),
                  State("filter-camera", "options"))
    def sessions(_n, camera, start_date, end_date, min_s, max_s, shown_cameras):
        try:
            cameras = sorted(data.camera_ids())
            rows = data.sessions(session_filter(camera, start_date, end_date, min_s, max_s), limit)
        except DataUnavailable:
            raise PreventUpdate from None
        # Same options: leave the dropdown alone so an open menu does not flicker each tick.
        options = no_update if shown_cameras == cameras else cameras
        return options, ui.sessions_table(rows)
