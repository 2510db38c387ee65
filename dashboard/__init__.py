"""moodstream dashboard: live overview, sessions, drill-down and report downloads (Dash).

Run: ``REDIS_URL=redis://... python -m dashboard [--host 127.0.0.1] [--port 8050]``
(served by waitress). Pages: ``/`` live overview (every camera's current sentiment, trend
lines over 1/5/15 min, emotion mix, people in view, active sessions, open-alert banner),
``/sessions`` (filters: camera, start date, min/max mean sentiment) and ``/session/<id>``
(sentiment timeline, emotion stacked area, faces and tracks, alerts, CSV/JSON/HTML
downloads). One ``dcc.Interval`` (DASHBOARD_REFRESH_S, at most 2 s) drives every update.

Modules: ``settings`` (typed settings), ``data`` (every Redis read), ``layout`` (page and
HTML builders), ``moodstream.figures`` (pure figure builders), ``callbacks`` (wiring),
``auth`` (basic auth / token), ``app`` (assembly), ``__main__`` (CLI and server).

Access: bound to 127.0.0.1 by default. Any other address needs DASHBOARD_USER +
DASHBOARD_PASSWORD (HTTP basic auth) or DASHBOARD_TOKEN (``Authorization: Bearer`` header,
or open ``/?token=...`` once: it becomes an HttpOnly cookie); without them it refuses to
start. No face image is ever shown: only aggregated numbers reach the page.
"""
