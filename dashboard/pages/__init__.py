"""The dashboard's pages (Dash Pages). Each module calls ``dash.register_page`` when imported
(dashboard.app imports them right after creating the app) and has:

- ``layout(**kwargs)``: the page's components (pure, no Redis);
- ``register(app, data, settings)``: its callbacks, hung on the shell's single ``tick``.

A page's callbacks only fire while the page is shown: their outputs exist only then.
"""

from __future__ import annotations

GRAPH_CONFIG = {"displaylogo": False}
