"""Builds the Dash app: layout, callbacks and access control, from settings and a data source."""

from __future__ import annotations

from dash import Dash

from dashboard import callbacks, workers
from dashboard.auth import install_auth
from dashboard.data import DashboardData
from dashboard.layout import build_layout
from dashboard.security import content_security_policy, install_security_headers
from dashboard.settings import DashboardSettings


def create_app(settings: DashboardSettings, data: DashboardData) -> Dash:
    # serve_locally: the page loads its JS from this server only (works offline, no CDN).
    app = Dash(__name__, title="moodstream", serve_locally=True, update_title=None)
    app.layout = build_layout(settings.refresh_s)
    callbacks.register(app, data, settings.session_list_limit)
    workers.register(app, data)
    install_auth(app.server, settings.basic_auth, settings.bearer_token,
                 secure_cookie=settings.behind_tls)
    # After every callback is registered: csp_hashes() covers Dash's inline scripts.
    install_security_headers(app.server, content_security_policy(app.csp_hashes()),
                             behind_tls=settings.behind_tls)
    return app
