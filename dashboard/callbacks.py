"""Callbacks: read through DashboardData, draw with moodstream.figures and dashboard.layout.

Every live callback hangs off the single `tick` interval. A page's callbacks only work
while that page is shown; when Redis is down they keep the last picture (PreventUpdate)
and the header says "Redis unreachable".
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from urllib.parse import unquote

from dash import Dash, Input, Output, State, ctx, dcc, no_update
from dash.exceptions import PreventUpdate

from dashboard import layout
from dashboard.data import DashboardData, DataUnavailable, SessionFilter
from moodstream import figures
from moodstream.reports import ReportError, SessionNotFound, render
from moodstream.schemas import valid_id

log = logging.getLogger(__name__)
SESSION_PREFIX = "/session/"
_PAGES = {"/": "overview", "/sessions": "sessions"}
_DOWNLOADS = {"download-csv": ("csv", "text/csv"), "download-json": ("json", "application/json"),
              "download-html": ("html", "text/html")}


def page_of(pathname: str | None) -> str:
    if not pathname or pathname in _PAGES:
        return _PAGES.get(pathname or "/", "overview")
    return "session" if pathname.startswith(SESSION_PREFIX) else "missing"


def session_id_of(pathname: str | None) -> str | None:
    """The session id in /session/<id>, or None when absent or not a valid id."""
    if page_of(pathname) != "session":
        return None
    candidate = unquote(pathname[len(SESSION_PREFIX):])
    return candidate if valid_id(candidate) else None


def _day_start(value: str | None) -> float | None:
    if not value:
        return None
    day = date.fromisoformat(value[:10])
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def session_filter(camera, start_date, end_date, min_s, max_s) -> SessionFilter:
    end = _day_start(end_date)
    return SessionFilter(camera_id=camera or None, start_ts=_day_start(start_date),
                         end_ts=end + timedelta(days=1).total_seconds() if end is not None else None,
                         min_sentiment=min_s, max_sentiment=max_s)


def register(app: Dash, data: DashboardData, session_limit: int = 500) -> None:
    _register_shell(app, data)
    _register_overview(app, data)
    _register_sessions(app, data, session_limit)
    _register_session(app, data)
    _register_download(app, data)


def _register_shell(app: Dash, data: DashboardData) -> None:
    """Router (show one page) and the header: Redis status and open-alert banner, on every page."""
    pages = ("overview", "sessions", "session", "missing")

    @app.callback([Output(f"page-{p}", "style") for p in pages], Input("url", "pathname"))
    def route(pathname):
        shown = page_of(pathname)
        return [layout.SHOWN if p == shown else layout.HIDDEN for p in pages]

    @app.callback(Output("redis-status", "children"), Output("alerts-banner", "children"),
                  Input("tick", "n_intervals"))
    def header(_n):
        try:
            alerts = data.open_alerts()
        except DataUnavailable:
            return layout.status_line(False), no_update
        return layout.status_line(True, data.clock()), layout.alerts_banner(alerts)


def _register_overview(app: Dash, data: DashboardData) -> None:
    @app.callback(Output("cameras-table", "children"), Output("people-total", "children"),
                  Output("trend-graph", "figure"), Output("mix-graph", "figure"),
                  Output("active-sessions", "children"),
                  Input("tick", "n_intervals"), Input("trend-window", "value"),
                  Input("url", "pathname"))
    def overview(_n, window_s, pathname):
        if page_of(pathname) != "overview":
            raise PreventUpdate
        window_s = int(window_s or 300)
        try:
            cameras = data.cameras()
            alerts = data.open_alerts()
            series = data.trend(cameras, window_s)
            active = data.active_sessions()
        except DataUnavailable:
            raise PreventUpdate from None
        mix = {c.camera_id: c.probs for c in cameras if c.session_id}
        return (layout.cameras_table(cameras, alerts, data.clock()), layout.people_total(cameras),
                figures.sentiment_trend(series, f"Sentiment, last {window_s // 60} min"),
                figures.emotion_mix(mix), layout.sessions_table(active, "active"))


def _register_sessions(app: Dash, data: DashboardData, session_limit: int) -> None:
    @app.callback(Output("filter-camera", "options"), Output("sessions-table", "children"),
                  Input("tick", "n_intervals"), Input("filter-camera", "value"),
                  Input("filter-dates", "start_date"), Input("filter-dates", "end_date"),
                  Input("filter-min", "value"), Input("filter-max", "value"),
                  Input("url", "pathname"), State("filter-camera", "options"))
    def sessions(_n, camera, start_date, end_date, min_s, max_s, pathname, shown_cameras):
        if page_of(pathname) != "sessions":
            raise PreventUpdate
        try:
            cameras = sorted(data.camera_ids())
            rows = data.sessions(session_filter(camera, start_date, end_date, min_s, max_s),
                                 session_limit)
        except DataUnavailable:
            raise PreventUpdate from None
        # Same options: leave the dropdown alone so an open menu does not flicker each tick.
        options = no_update if shown_cameras == cameras else cameras
        return options, layout.sessions_table(rows)


def _blank_session(title: str, message: str) -> tuple:
    return (title, message, *[figures.empty_figure("no data")] * 3, "", None)


def _register_session(app: Dash, data: DashboardData) -> None:
    @app.callback(Output("session-title", "children"), Output("session-summary", "children"),
                  Output("session-sentiment", "figure"), Output("session-emotions", "figure"),
                  Output("session-people", "figure"), Output("session-alerts", "children"),
                  Output("session-rendered", "data"),
                  Input("tick", "n_intervals"), Input("url", "pathname"),
                  State("session-rendered", "data"))
    def session(_n, pathname, rendered):
        if page_of(pathname) != "session":
            raise PreventUpdate
        session_id = session_id_of(pathname)
        if session_id is None:
            return _blank_session("Invalid session id",
                                  "Session ids use letters, digits, _ . : - only.")
        if rendered == {"id": session_id, "status": "closed"} and ctx.triggered_id == "tick":
            raise PreventUpdate  # a closed session no longer changes
        try:
            report = data.report(session_id)
        except SessionNotFound:
            return _blank_session(f"Session {session_id}", "No such session in Redis.")
        except DataUnavailable:
            raise PreventUpdate from None
        charts = figures.session_figures(report)
        return (f"Session {session_id} · camera {report.get('camera_id')}",
                layout.session_summary(report), charts["sentiment"], charts["emotions"],
                charts["people"], layout.session_alerts(report.get("alerts") or []),
                {"id": session_id, "status": report.get("status")})


def _register_download(app: Dash, data: DashboardData) -> None:
    @app.callback(Output("download", "data"),
                  [Input(button, "n_clicks") for button in _DOWNLOADS],
                  State("url", "pathname"), prevent_initial_call=True)
    def download(*args):
        session_id = session_id_of(args[-1])
        if session_id is None or ctx.triggered_id not in _DOWNLOADS:
            raise PreventUpdate
        fmt, mime = _DOWNLOADS[ctx.triggered_id]
        try:
            report = data.report(session_id)
        except (SessionNotFound, ReportError, DataUnavailable) as exc:
            log.warning("report for %s not available: %s", session_id, exc)
            raise PreventUpdate from None
        # The file name comes from a validated id only, never from raw user text.
        return dcc.send_string(render(report, fmt), f"moodstream-{session_id}.{fmt}", type=mime)
