"""/sessions: every session, filtered by camera, start date, status and mean sentiment, PAGE_SIZE rows
a page, newest (or oldest) first by start time or sorted by a column: mean sentiment, faces,
frames or duration. By start time only the page shown is read (DashboardData.sessions_page: a
range of the sessions index); a column sort reads the newest sessions of the date range, at
most 4 x session_list_limit, and sorts them (DashboardData.sorted_page), and the page says when
the range held more. Either is read once per tick and query for every viewer."""

from __future__ import annotations

import dash
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import layout as ui
from dashboard.callbacks import SESSIONS_PAGE_SIZE as PAGE_SIZE, session_filter
from dashboard.data import DashboardData, DataUnavailable
from dashboard.sessions_data import COLUMN_SORTS, START_ORDERS, sort_note
from moodstream.redis_keys import SESSION_STATUSES

_FILTERS = (Input("filter-camera", "value"), Input("filter-dates", "start_date"),
            Input("filter-dates", "end_date"), Input("filter-min", "value"),
            Input("filter-max", "value"), Input("sessions-order", "value"),
            Input("filter-status", "value"))
_PAGER_BUTTON = "btn btn-outline-secondary btn-sm"
ORDER_OPTIONS = [{"label": label, "value": value} for value, label in START_ORDERS.items()] + \
    [{"label": sort.label, "value": value} for value, sort in COLUMN_SORTS.items()]


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
            _filter("Status", dcc.Dropdown(
                id="filter-status", placeholder="any status", clearable=True, searchable=False,
                options=list(SESSION_STATUSES)), "10em"),
            _filter("Min mean sentiment", dcc.Input(
                id="filter-min", type="number", min=-1, max=1, step="any",
                placeholder="-1 … 1", debounce=True)),
            _filter("Max mean sentiment", dcc.Input(
                id="filter-max", type="number", min=-1, max=1, step="any",
                placeholder="-1 … 1", debounce=True)),
            _filter("Order", dcc.Dropdown(
                id="sessions-order", value="newest", clearable=False, searchable=False,
                options=ORDER_OPTIONS), "14em"),
        ]),
        dcc.Store(id="sessions-page-no", data=0),
        html.Div(id="sessions-sort-note", className="text-body-secondary small my-2"),
        html.Div(id="sessions-table"),
        html.Div(className="pager d-flex gap-2 align-items-center my-3", children=[
            html.Button("← Newer", id="sessions-prev", className=_PAGER_BUTTON, disabled=True),
            html.Span(id="sessions-page-label"),
            html.Button("Older →", id="sessions-next", className=_PAGER_BUTTON, disabled=True),
        ]),
    ])


dash.register_page(__name__, layout=layout, path="/sessions", name="Sessions",
                   title="moodstream · sessions", order=1)


def register(app: Dash, data: DashboardData, settings) -> None:
    # session_list_limit bounds how deep the pages go, and a filter's scan of the index.
    limit = settings.session_list_limit
    last_page = max(0, (limit - 1) // PAGE_SIZE)

    @app.callback(Output("sessions-page-no", "data"), Input("sessions-prev", "n_clicks"),
                  Input("sessions-next", "n_clicks"), *_FILTERS, State("sessions-page-no", "data"),
                  prevent_initial_call=True)
    def turn_page(*args):
        page = args[-1] or 0
        step = {"sessions-prev": -1, "sessions-next": 1}.get(ctx.triggered_id)
        return 0 if step is None else min(last_page, max(0, page + step))  # a filter: page 0

    @app.callback(Output("filter-camera", "options"), Output("sessions-table", "children"),
                  Output("sessions-page-label", "children"), Output("sessions-prev", "disabled"),
                  Output("sessions-next", "disabled"), Output("sessions-sort-note", "children"),
                  Output("sessions-prev", "children"), Output("sessions-next", "children"),
                  Input("tick", "n_intervals"), *_FILTERS, Input("sessions-page-no", "data"),
                  State("filter-camera", "options"))
    def sessions(_n, camera, start_date, end_date, min_s, max_s, order, status, page,
                 shown_cameras):
        page = min(last_page, max(0, int(page or 0)))
        flt = session_filter(camera, start_date, end_date, min_s, max_s, order, status)
        try:
            cameras = sorted(data.shared_camera_ids())
            if order in COLUMN_SORTS:
                sort = data.sorted_page(flt, order, page, PAGE_SIZE, scan=4 * limit)
                rows, more, note = sort.rows, sort.more, sort_note(sort, order)
            else:
                rows, more = data.sessions_page(flt, page, PAGE_SIZE, scan=4 * limit)
                note = ""
        except DataUnavailable:
            raise PreventUpdate from None
        # Same options: leave the dropdown alone so an open menu does not flicker each tick.
        options = no_update if shown_cameras == cameras else cameras
        label = f"page {page + 1}" + (f" · sessions {page * PAGE_SIZE + 1}–"
                                      f"{page * PAGE_SIZE + len(rows)}" if rows else "")
        by_time = order not in COLUMN_SORTS
        return (options, ui.sessions_table(rows), label, page == 0,
                not more or page >= last_page, note, "← Newer" if by_time else "← Previous",
                "Older →" if by_time else "Next →")

