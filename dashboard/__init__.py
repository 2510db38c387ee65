"""moodstream dashboard: live overview, sessions, drill-down and report downloads (Dash).

Run: ``REDIS_URL=redis://... python -m dashboard [--host 127.0.0.1] [--port 8050]``
(served by waitress). Dash Pages (``dashboard/pages``): ``/`` live overview (KPI tiles:
customer-sentiment index and its change against the last hour, people in view, faces per
minute, open alerts; camera cards with a 15-minute sparkline, dominant emotion, people, alert
state, purpose and notice; trend lines over 1/5/15 min, emotion mix, active sessions),
``/sessions`` (filters: camera, start date, min/max mean sentiment) and ``/session/<id>``
(sentiment timeline, emotion stacked area, faces and tracks, alerts, CSV/JSON/HTML
downloads). One ``dcc.Interval`` (the refresh period, at most 2 s) drives every update;
light and dark themes (dash-bootstrap-components, Bootstrap's CSS served from ``assets/``).

Modules: ``settings`` (typed settings), ``data`` (every Redis read, and the reader shared by
all viewers for one refresh interval), ``kpis`` (the overview's numbers, pure), ``layout``
(the shell and HTML builders), ``pages`` (one module per page: layout and callbacks),
``moodstream.figures`` (pure figure builders), ``callbacks`` (shell callbacks, wiring),
``auth`` (basic auth / token), ``app`` (assembly), ``__main__`` (CLI and server).

Access: bound to 127.0.0.1 by default. Any other address needs DASHBOARD_USER +
DASHBOARD_PASSWORD (HTTP basic auth) or DASHBOARD_TOKEN (``Authorization: Bearer`` header,
or open ``/?token=...`` once: it becomes an HttpOnly cookie); without them it refuses to
start. No face image is ever shown: only aggregated numbers reach the page.
"""
