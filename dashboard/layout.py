"""The shell every page shares, and the small HTML builders the pages fill it with.

The pages themselves are in dashboard.pages (Dash Pages). Builders here are pure: plain
data in, Dash components out. No face image anywhere.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping
from urllib.parse import quote

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard.data import CameraLive, SessionRow, utc



def shell(refresh_s: float) -> html.Div:
    """What every page shares: header with navigation, Redis status and theme switch, alert
    banner, Workers line, the one timer, and Dash Pages' container for the current page."""
    return html.Div(id="theme-root", className="bg-body text-body", **{"data-bs-theme": "light"},
                    children=[
        dcc.Location(id="url"),
        # The only timer: every live callback is driven by this one tick.
        dcc.Interval(id="tick", interval=int(refresh_s * 1000), n_intervals=0),
        dcc.Download(id="download"),
        _header(),
        dbc.Container(fluid=True, className="px-3 px-lg-4", children=[
            html.Div(id="alerts-banner"),
            html.Div(id="workers-status"),  # filled by dashboard.workers
            dash.page_container,
        ]),
    ])


def _header() -> dbc.Navbar:
    return dbc.Navbar(dbc.Container(fluid=True, children=[
        dbc.NavbarBrand("moodstream", href="/"),
        dbc.Nav([dbc.NavItem(dbc.NavLink("Live overview", href="/", id="nav-overview",
                                         active="exact")),
                 dbc.NavItem(dbc.NavLink("History", href="/history", id="nav-history",
                                         active="exact")),
                 dbc.NavItem(dbc.NavLink("Sessions", href="/sessions", id="nav-sessions",
                                         active="partial")),
                 dbc.NavItem(dbc.NavLink("Alerts", href="/alerts", id="nav-alerts",
                                         active="exact"))], navbar=True, className="me-auto"),
        html.Span(id="redis-status", children="connecting…", className="me-3 small"),
        dbc.Switch(id="theme-switch", label="Dark", value=False, persistence=True,
                   persistence_type="local", className="mb-0"),
    ]), color="body-tertiary", dark=False, className="mb-2 border-bottom")


def fmt_time(ts: float | None) -> str:
    """UTC time of epoch seconds; "—" when absent or beyond what a date can show (±1e20)."""
    if not ts:
        return "—"
    try:
        return utc(ts).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError, TypeError):
        return "—"


def fmt_sentiment(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _sentiment_color(value: float | None) -> str:
    if value is None:
        return "#777"
    return "#1a7f37" if value > 0.15 else "#c62828" if value < -0.15 else "#555"


def _table(header: Iterable[str], rows: list[list[Any]], table_id: str) -> html.Table:
    head = html.Tr([html.Th(h) for h in header])
    body = [html.Tr([html.Td(cell) for cell in row]) for row in rows]
    return html.Table([html.Thead(head), html.Tbody(body)], id=table_id,
                      className="table table-sm table-hover data-table")


def session_link(session_id: str) -> dcc.Link:
    return dcc.Link(session_id, href=f"/session/{quote(session_id, safe='')}")


def cameras_table(cameras: list[CameraLive], alerts: Mapping[str, Any], now: float) -> html.Div:
    if not cameras:
        return html.P("No camera has reported yet.", id="no-cameras")
    rows = [[
        html.Span(cam.camera_id, className="camera-id"),
        html.Span(fmt_sentiment(cam.sentiment), style={"color": _sentiment_color(cam.sentiment),
                                                      "fontWeight": "bold"}),
        cam.dominant or "—", cam.faces, cam.people,
        session_link(cam.session_id) if cam.session_id else "—",
        fmt_age(cam.last_seen, now),
        "ALERT" if cam.camera_id in alerts or cam.alert else "",
    ] for cam in cameras]
    return _table(["camera", "sentiment", "dominant", "faces", "people", "session", "last seen",
                   "alert"], rows, "cameras")


def fmt_age(ts: float | None, now: float) -> str:
    if ts is None:
        return "—"
    age = max(0.0, now - ts)
    return f"{age:.0f} s ago" if age < 120 else fmt_time(ts)


def sessions_table(rows: list[SessionRow], table_id: str = "sessions") -> html.Div:
    if not rows:
        return html.P("No sessions match.", id=f"{table_id}-empty")
    body = [[session_link(r.session_id), r.camera_id, r.status, fmt_time(r.started_at),
             fmt_time(r.ended_at), r.frames, r.faces,
             html.Span(fmt_sentiment(r.mean_sentiment),
                       style={"color": _sentiment_color(r.mean_sentiment)})] for r in rows]
    return _table(["session", "camera", "status", "started (UTC)", "last (UTC)", "frames", "faces",
                   "mean sentiment"], body, table_id)


def alerts_banner(alerts: Mapping[str, Mapping[str, Any]]) -> list:
    return [html.Div(f"Alert on {camera}: {describe_alert(alert)}", role="alert",
                     className="alert-banner alert alert-danger py-2 mb-2")
            for camera, alert in sorted(alerts.items())]


def describe_alert(alert: Mapping[str, Any]) -> str:
    """One line from an alert record (fields per the moodstream.redis_keys docstring)."""
    parts = [f"{alert.get('status') or 'open'} negative-sentiment alert"]
    if alert.get("session_id"):
        parts.append(f"session {alert['session_id']}")
    for key, label in (("sentiment", "window mean"), ("worst", "worst"),
                       ("threshold", "threshold")):
        if isinstance(alert.get(key), (int, float)):
            parts.append(f"{label} {alert[key]:+.2f}")
    if isinstance(alert.get("opened_at"), (int, float)):
        parts.append(f"since {fmt_time(alert['opened_at'])} UTC")
    if isinstance(alert.get("resolved_at"), (int, float)):
        parts.append(f"resolved {fmt_time(alert['resolved_at'])} UTC")
    return " · ".join(parts)


def session_summary(report: Mapping[str, Any]) -> html.Table:
    fields = [("camera", report.get("camera_id")), ("status", report.get("status")),
              ("started", report.get("started_at")), ("ended", report.get("ended_at")),
              ("duration (s)", report.get("duration_s")),
              ("frames processed", report.get("frames_processed")),
              ("frames skipped (unreadable)", report.get("skipped_frames")),
              ("faces detected", report.get("faces_detected")),
              ("tracks (people)", report.get("people")),
              ("dominant emotion", report.get("dominant_emotion")),
              ("mean sentiment", fmt_sentiment(report.get("mean_sentiment")))]
    return _table(["field", "value"], [[k, "—" if v in (None, "") else v] for k, v in fields],
                  "session-facts")


def session_alerts(alerts: list[Mapping[str, Any]]) -> html.Div:
    if not alerts:
        return html.P("No alerts in this session.")
    return html.Ul([html.Li(describe_alert(a), className="session-alert") for a in alerts])


def status_line(ok: bool, now: float | None = None) -> html.Span:
    if not ok:
        return html.Span("Redis unreachable", id="redis-down", className="text-danger fw-bold")
    stamp = time.strftime("%H:%M:%S", time.gmtime(now or time.time()))
    return html.Span(f"live · updated {stamp} UTC", className="text-success")
