"""/session/<id>: one session's timeline, emotions, faces and tracks, alerts, downloads."""

from __future__ import annotations

import logging

import dash
from dash import Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import layout as ui
from dashboard.callbacks import SESSION_PREFIX, session_id_of
from dashboard.data import DashboardData, DataUnavailable
from dashboard.pages import GRAPH_CONFIG
from moodstream import figures
from moodstream.reports import ReportError, SessionNotFound, render

log = logging.getLogger(__name__)
_BUTTON = "btn btn-outline-secondary btn-sm"
DOWNLOADS = {"download-csv": ("csv", "text/csv"), "download-json": ("json", "application/json"),
             "download-html": ("html", "text/html"),
             "download-pdf": ("pdf", "application/pdf")}


def layout(session_id: str | None = None, **_kwargs) -> html.Div:
    return html.Div(id="page-session", children=[
        dcc.Store(id="session-rendered"),
        html.H3(id="session-title"),
        html.Div(className="downloads", style={"display": "flex", "gap": "0.5em"}, children=[
            html.Button("Download CSV", id="download-csv", className=_BUTTON),
            html.Button("Download JSON", id="download-json", className=_BUTTON),
            html.Button("Download HTML report", id="download-html", className=_BUTTON),
            html.Button("Download PDF report", id="download-pdf", className=_BUTTON),
        ]),
        html.Div(id="session-summary"),
        dcc.Graph(id="session-sentiment", config=GRAPH_CONFIG),
        dcc.Graph(id="session-emotions", config=GRAPH_CONFIG),
        dcc.Graph(id="session-people", config=GRAPH_CONFIG),
        html.H4("Alerts"),
        html.Div(id="session-alerts"),
    ])


dash.register_page(__name__, layout=layout, path_template="/session/<session_id>",
                   name="Session", title="moodstream · session")


def _blank(title: str, message: str) -> tuple:
    return (title, message, *[figures.plain_empty("no data")] * 3, "", None)


def _view(data: DashboardData, session_id: str) -> tuple:
    """The page's outputs for one session (callers must not modify them: they are shared)."""
    report = data.shared_report(session_id)
    charts = figures.session_figures(report)
    return (f"Session {session_id} · camera {report.get('camera_id')}",
            ui.session_summary(report), charts["sentiment"], charts["emotions"],
            charts["people"], ui.session_alerts(report.get("alerts") or []),
            {"id": session_id, "status": report.get("status")})


def register(app: Dash, data: DashboardData, _settings) -> None:
    @app.callback(Output("session-title", "children"), Output("session-summary", "children"),
                  Output("session-sentiment", "figure"), Output("session-emotions", "figure"),
                  Output("session-people", "figure"), Output("session-alerts", "children"),
                  Output("session-rendered", "data"),
                  Input("tick", "n_intervals"), Input("url", "pathname"),
                  State("session-rendered", "data"))
    def session(_n, pathname, rendered):
        if not (pathname or "").startswith(SESSION_PREFIX):
            raise PreventUpdate  # leaving the page
        session_id = session_id_of(pathname)
        if session_id is None:
            return _blank("Invalid session id", "Session ids use letters, digits, _ . : - only.")
        if rendered == {"id": session_id, "status": "closed"} and ctx.triggered_id == "tick":
            raise PreventUpdate  # a closed session no longer changes
        try:
            # Built once per tick for every viewer of this session (a closed one's report
            # is kept: DashboardData.shared_report).
            return data.shared(f"session-view:{session_id}", lambda: _view(data, session_id))
        except SessionNotFound:
            return _blank(f"Session {session_id}", "No such session in Redis.")
        except DataUnavailable:
            raise PreventUpdate from None

    @app.callback(Output("download", "data"),
                  [Input(button, "n_clicks") for button in DOWNLOADS],
                  State("url", "pathname"), prevent_initial_call=True)
    def download(*args):
        session_id = session_id_of(args[-1])
        if session_id is None or ctx.triggered_id not in DOWNLOADS:
            raise PreventUpdate
        fmt, mime = DOWNLOADS[ctx.triggered_id]
        try:
            report = data.report(session_id)
        except (SessionNotFound, ReportError, DataUnavailable) as exc:
            log.warning("report for %s not available: %s", session_id, exc)
            raise PreventUpdate from None
        # The file name comes from a validated id only, never from raw user text.
        content, name = render(report, fmt), f"moodstream-{session_id}.{fmt}"
        if isinstance(content, bytes):  # PDF
            return dcc.send_bytes(content, name, type=mime)
        return dcc.send_string(content, name, type=mime)
