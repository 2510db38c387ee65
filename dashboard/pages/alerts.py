"""/alerts: open and resolved alerts, acknowledgements with a note, per-camera thresholds.

Everyone signed in sees every alert and every acknowledgement (who, when, note) and may
acknowledge one; only an admin (settings.admins, dashboard.auth) may change a camera's
thresholds, checked again on the server when the edit arrives. The aggregator picks an
edit up within a few seconds (aggregator.thresholds). Notes are shown as text children,
which React escapes: a note cannot inject markup.
"""

from __future__ import annotations

import hashlib

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import layout as ui
from dashboard.alerts_data import NOTE_MAX_CHARS, AlertInputError, AlertRow, AlertsData
from dashboard.auth import current_user
from dashboard.data import DashboardData, DataUnavailable
from moodstream.alert_thresholds import MAX_MIN_DURATION_S

ACK_BUTTON = "ack-open"
# The filters' "no filter" value: not a valid id, so no camera can be named so (and a Select
# shows an option valued "" as blank).
EVERY = "*"
STATUS_OPTIONS = [{"label": "open and resolved", "value": EVERY},
                  {"label": "open", "value": "open"}, {"label": "resolved", "value": "resolved"}]
THRESHOLD_INPUTS = ("thr-threshold", "thr-resolve", "thr-duration")


def _labelled(label: str, control, width: str = "14em") -> html.Div:
    return html.Div([dbc.Label(label, className="small mb-0"), control], style={"width": width})


def _number(input_id: str, low: float, high: float, step: float, hint: str) -> dbc.Input:
    return dbc.Input(id=input_id, type="number", min=low, max=high, step=step, placeholder=hint)


def _ack_form() -> dbc.Card:
    return dbc.Card(id="ack-form", className="mt-3", style={"display": "none"}, body=True,
                    children=[
        dcc.Store(id="ack-target"),
        html.Div(id="ack-target-label", className="fw-semibold mb-2"),
        dbc.Textarea(id="ack-note", maxLength=NOTE_MAX_CHARS, rows=2,
                     placeholder=f"note for everyone (optional, at most {NOTE_MAX_CHARS} characters)"),
        dbc.Button("Acknowledge", id="ack-save", color="primary", size="sm", className="mt-2"),
        html.Div(id="ack-result", className="mt-2 small"),
    ])


def _thresholds_form() -> dbc.Card:
    return dbc.Card(className="mt-2 mb-4", body=True, children=[
        html.Div(id="thr-who", className="small mb-2"),
        html.Div(className="d-flex flex-wrap gap-3 align-items-end", children=[
            _labelled("Camera", dbc.Select(id="thr-camera", options=[],
                                           placeholder="choose a camera")),
            _labelled("Threshold (opens at mean ≤ −x)", _number("thr-threshold", 0.01, 1, 0.01, "0 < x ≤ 1")),
            _labelled("Resolve threshold", _number("thr-resolve", 0, 1, 0.01, "0 ≤ x ≤ threshold")),
            _labelled("Minimum duration (s)", _number("thr-duration", 0, MAX_MIN_DURATION_S, 1, "seconds")),
            dbc.Button("Save thresholds", id="thr-save", color="primary", size="sm"),
            dbc.Button("Back to defaults", id="thr-reset", color="secondary", outline=True, size="sm"),
        ]),
        html.Div(id="thr-current", className="mt-2 small text-body-secondary"),
        html.Div(id="thr-result", className="mt-2 small"),
        html.Div(id="thresholds-table", className="mt-3"),
    ])


def layout(**_kwargs) -> html.Div:
    return html.Div(id="page-alerts", children=[
        dcc.Store(id="alerts-digest"), dcc.Store(id="ack-saved", data=0),
        dcc.Store(id="thr-saved", data=0),
        html.H3("Alerts"),
        html.Div(className="d-flex flex-wrap gap-3 mb-3", children=[
            _labelled("Camera", dbc.Select(id="alerts-camera", value=EVERY,
                                           options=[{"label": "all cameras", "value": EVERY}])),
            _labelled("Status", dbc.Select(id="alerts-status", value=EVERY,
                                           options=STATUS_OPTIONS)),
        ]),
        html.Div(id="alerts-table", children=html.P("Loading alerts…")),
        _ack_form(),
        html.H4("Thresholds per camera", className="mt-4"),
        _thresholds_form(),
    ])


dash.register_page(__name__, layout=layout, path="/alerts", name="Alerts",
                   title="moodstream · alerts", order=2)


def _ack_cell(row: AlertRow) -> html.Div | str:
    if row.ack is None:
        return "—"
    return html.Div([html.Span(f"{row.ack.by} · {ui.fmt_time(row.ack.at)} UTC",
                               className="ack-by text-body-secondary"),
                     html.Div(row.ack.note, className="ack-note", style={"whiteSpace": "pre-wrap"})],
                    className="alert-ack")


def _ack_button(row: AlertRow) -> dbc.Button:
    target = {"type": ACK_BUTTON, "camera": row.camera_id, "session": row.session_id,
              "alert": row.alert_id}
    return dbc.Button("Edit note" if row.ack else "Acknowledge", id=target, size="sm",
                      outline=True, color="secondary" if row.ack else "primary")


def alerts_table(rows: list[AlertRow]) -> html.Div:
    if not rows:
        return html.P("No alerts match.", id="alerts-empty")
    body = [[row.camera_id, ui.session_link(row.session_id),
             dbc.Badge(row.status, color="danger" if row.status == "open" else "secondary"),
             ui.fmt_time(row.opened_at), ui.fmt_time(row.resolved_at),
             ui.fmt_sentiment(row.sentiment), ui.fmt_sentiment(row.worst),
             ui.fmt_sentiment(row.threshold), row.resolved_because or "—", _ack_cell(row),
             _ack_button(row)] for row in rows]
    return ui._table(["camera", "session", "status", "opened (UTC)", "resolved (UTC)",
                      "window mean", "worst", "threshold", "resolved because", "acknowledged",
                      ""], body, "alerts")


def thresholds_table(stored: dict) -> html.Div:
    if not stored:
        return html.P("Every camera uses the aggregator's default thresholds.",
                      id="thresholds-empty")
    body = [[camera, f"−{t.threshold:g}", f"−{t.resolve_threshold:g}", f"{t.min_duration_s:g}",
             f"{t.updated_by} · {ui.fmt_time(t.updated_at)} UTC"] for camera, t in stored.items()]
    return ui._table(["camera", "opens at mean ≤", "resolves above", "minimum duration (s)",
                      "changed by"], body, "thresholds")


def _digest(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def register(app: Dash, data: DashboardData, settings) -> None:
    alerts = AlertsData(data, settings.alert_ack_ttl_s)
    _register_list(app, data, alerts)
    _register_ack(app, alerts)
    _register_thresholds(app, alerts, settings.admins)


def _register_list(app: Dash, data: DashboardData, alerts: AlertsData) -> None:
    @app.callback(Output("alerts-table", "children"), Output("alerts-digest", "data"),
                  Output("alerts-camera", "options"), Output("thr-camera", "options"),
                  Input("tick", "n_intervals"), Input("alerts-camera", "value"),
                  Input("alerts-status", "value"), Input("ack-saved", "data"),
                  State("alerts-digest", "data"), State("alerts-camera", "options"))
    def alerts_view(_n, camera, status, _saved, shown, camera_options):
        try:
            rows = alerts.alerts(None if camera == EVERY else camera,
                                 None if status == EVERY else status)
            cameras = sorted(set(data.camera_ids()) | {row.camera_id for row in alerts.alerts()})
        except DataUnavailable:
            raise PreventUpdate from None
        options = [{"label": "all cameras", "value": EVERY}] + [
            {"label": c, "value": c} for c in cameras]
        digest = _digest(rows)
        # Unchanged: leave the table (and its buttons) alone, so nothing flickers each tick.
        same = digest == shown
        return (no_update if same else alerts_table(rows), digest,
                no_update if options == camera_options else options,
                no_update if options == camera_options else options[1:])


def _register_ack(app: Dash, alerts: AlertsData) -> None:
    @app.callback(Output("ack-target", "data"), Output("ack-target-label", "children"),
                  Output("ack-form", "style"), Output("ack-note", "value"),
                  Output("ack-result", "children", allow_duplicate=True),
                  Input({"type": ACK_BUTTON, "camera": ALL, "session": ALL, "alert": ALL},
                        "n_clicks"), prevent_initial_call=True)
    def choose(clicks):
        target = ctx.triggered_id
        if not target or not any(clicks):  # the table was re-rendered, nothing was clicked
            raise PreventUpdate
        chosen = {k: target[k] for k in ("camera", "session", "alert")}
        label = f"Acknowledge alert {chosen['alert']} on {chosen['camera']} (session {chosen['session']})"
        return chosen, label, {"display": "block"}, "", ""

    @app.callback(Output("ack-result", "children", allow_duplicate=True),
                  Output("ack-saved", "data"),
                  Input("ack-save", "n_clicks"), State("ack-target", "data"),
                  State("ack-note", "value"), State("ack-saved", "data"),
                  prevent_initial_call=True)
    def save(_clicks, target, note, saved):
        if not isinstance(target, dict):
            raise PreventUpdate
        try:
            ack = alerts.acknowledge(target.get("camera"), target.get("session"),
                                     target.get("alert"), current_user(), note)
        except AlertInputError as exc:
            return html.Span(f"Not saved: {exc}", className="text-danger", id="ack-error"), no_update
        except DataUnavailable:
            return html.Span("Not saved: Redis unreachable", className="text-danger",
                             id="ack-error"), no_update
        return (html.Span(f"Acknowledged by {ack.by} at {ui.fmt_time(ack.at)} UTC",
                          className="text-success", id="ack-done"), (saved or 0) + 1)


def _register_thresholds(app: Dash, alerts: AlertsData, admins: tuple[str, ...]) -> None:
    @app.callback(Output("thresholds-table", "children"), Output("thr-who", "children"),
                  *[Output(i, "disabled") for i in (*THRESHOLD_INPUTS, "thr-save", "thr-reset")],
                  Input("tick", "n_intervals"), Input("thr-saved", "data"))
    def thresholds_view(_n, _saved):
        user = current_user()
        admin = user in admins
        who = (f"Signed in as {user}: you may change thresholds." if admin else
               f"Signed in as {user}: only an admin may change thresholds.")
        try:  # after a save, read again rather than this tick's shared answer
            table = thresholds_table(alerts.thresholds(shared=ctx.triggered_id == "tick"))
        except DataUnavailable:
            table = no_update
        return (table, html.Span(who, id="thr-admin" if admin else "thr-readonly"),
                *[not admin] * (len(THRESHOLD_INPUTS) + 2))

    @app.callback(Output("thr-current", "children"),
                  *[Output(i, "value") for i in THRESHOLD_INPUTS], Input("thr-camera", "value"),
                  prevent_initial_call=True)
    def fill(camera):
        """The chosen camera's stored thresholds in the form (empty: the defaults apply)."""
        try:
            stored = alerts.thresholds().get(camera or "")
        except DataUnavailable:
            raise PreventUpdate from None
        if stored is None:
            return html.Span(f"{camera} uses the aggregator's defaults.", id="thr-shown"), \
                None, None, None
        return (html.Span(f"{camera}: set by {stored.updated_by} at "
                          f"{ui.fmt_time(stored.updated_at)} UTC.", id="thr-shown"),
                stored.threshold, stored.resolve_threshold, stored.min_duration_s)

    @app.callback(Output("thr-result", "children"), Output("thr-saved", "data"),
                  Input("thr-save", "n_clicks"), Input("thr-reset", "n_clicks"),
                  State("thr-camera", "value"), *[State(i, "value") for i in THRESHOLD_INPUTS],
                  State("thr-saved", "data"), prevent_initial_call=True)
    def save(_save, _reset, camera, threshold, resolve, duration, saved):
        user = current_user()
        if user not in admins:  # the form is disabled for them; this is the real check
            return _refused(f"only an admin may change thresholds ({user} is not one)"), no_update
        try:
            if ctx.triggered_id == "thr-reset":
                alerts.clear_thresholds(camera)
                done = f"{camera} uses the aggregator's defaults again"
            else:
                value = alerts.set_thresholds(camera, threshold, resolve, duration, user)
                done = (f"{camera}: opens at ≤ −{value.threshold:g}, resolves above "
                        f"−{value.resolve_threshold:g}, after {value.min_duration_s:g} s")
        except AlertInputError as exc:
            return _refused(str(exc)), no_update
        except DataUnavailable:
            return _refused("Redis unreachable"), no_update
        return html.Span(f"Saved: {done}", className="text-success", id="thr-done"), (saved or 0) + 1


def _refused(why: str) -> html.Span:
    return html.Span(f"Not saved: {why}", className="text-danger", id="thr-error")
