"""The shell's callbacks (header: Redis status and open-alert banner, on every page) and the
wiring of every page's own callbacks (dashboard.pages.*.register), and the pure helpers the
pages share (they live here so tests can import them without registering pages).

Every live callback hangs off the single `tick` interval. When Redis is down they keep the
last picture (PreventUpdate) and the header says "Redis unreachable".
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from urllib.parse import unquote

from dash import Dash, Input, Output, no_update

from dashboard import layout
from dashboard.data import DashboardData, DataUnavailable, SessionFilter
from moodstream.redis_keys import SESSION_STATUSES
from moodstream.schemas import valid_id

SESSION_PREFIX = "/session/"
SESSIONS_PAGE_SIZE = 50  # rows a page of /sessions


def session_id_of(pathname: str | None) -> str | None:
    """The session id in /session/<id>, or None when absent or not a valid id."""
    if not pathname or not pathname.startswith(SESSION_PREFIX):
        return None
    candidate = unquote(pathname[len(SESSION_PREFIX):])
    return candidate if valid_id(candidate) else None


def _day_start(value: str | None) -> float | None:
    if not value:
        return None
    day = date.fromisoformat(value[:10])
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def session_filter(camera, start_date, end_date, min_s, max_s,
                   order: str | None = None, status: str | None = None) -> SessionFilter:
    """The sessions page's filter widgets' values -> a SessionFilter (dates are UTC days;
    order "oldest" lists the oldest sessions first, anything else the newest; a status
    that is not one of SESSION_STATUSES filters nothing)."""
    end = _day_start(end_date)
    return SessionFilter(camera_id=camera or None, start_ts=_day_start(start_date),
                         end_ts=end + timedelta(days=1).total_seconds() if end is not None else None,
                         min_sentiment=min_s, max_sentiment=max_s,
                         oldest_first=order == "oldest",
                         status=status if status in SESSION_STATUSES else None)


def register(app: Dash, data: DashboardData, settings, pages) -> None:
    _register_shell(app, data)
    for page in pages:
        page.register(app, data, settings)


def theme_of(dark: bool | None) -> str:
    return "dark" if dark else "light"


def _register_shell(app: Dash, data: DashboardData) -> None:
    @app.callback(Output("redis-status", "children"), Output("alerts-banner", "children"),
                  Input("tick", "n_intervals"))
    def header(_n):
        try:
            alerts = data.live().alerts  # the shared reader: one read per tick for all
        except DataUnavailable:
            return layout.status_line(False), no_update
        return layout.status_line(True, data.clock()), layout.alerts_banner(alerts)

    @app.callback(Output("theme-root", "data-bs-theme"), Input("theme-switch", "value"))
    def theme(dark):
        return theme_of(dark)
