"""Builds the Dash app (Dash Pages): shell, pages, callbacks and access control, from settings
and a data source."""

from __future__ import annotations

import importlib

from dash import Dash

from dashboard import callbacks, workers
from dashboard.auth import install_auth
from dashboard.data import DashboardData
from dashboard.layout import shell
from dashboard.security import content_security_policy, install_security_headers
from dashboard.settings import DashboardSettings

# Imported (and so registered with dash.register_page) once the app exists.
PAGES = ("overview", "sessions", "session", "alerts", "history", "not_found_404")


def create_app(settings: DashboardSettings, data: DashboardData) -> Dash:
    # serve_locally: the page loads its JS from this server only (works offline, no CDN).
    # pages_folder="": the pages are imported below as ordinary modules of this package, so
    # their callbacks can be wired to this app's data source.
    app = Dash(__name__, title="moodstream", serve_locally=True, update_title=None,
               use_pages=True, pages_folder="")
    pages = [importlib.import_module(f"dashboard.pages.{name}") for name in PAGES]
    app.layout = shell(settings.refresh_s)
    callbacks.register(app, data, settings, pages)
    workers.register(app, data)
    install_auth(app.server, settings.basic_auth, settings.bearer_token,
                 secure_cookie=settings.behind_tls)
    # Asked per response: csp_hashes() covers Dash's inline scripts, the page router's too.
    install_security_headers(app.server, lambda: content_security_policy(app.csp_hashes()),
                             behind_tls=settings.behind_tls)
    return app
