"""Any unknown path (Dash Pages shows the module named not_found_404)."""

from __future__ import annotations

import dash
from dash import dcc, html


def layout(**_kwargs) -> html.Div:
    return html.Div(id="page-missing", children=[
        html.P("No such page."), dcc.Link("Back to the overview", href="/")])


dash.register_page(__name__, layout=layout, path="/not-found",
                   title="moodstream · no such page")


def register(_app, _data, _settings) -> None:
    return None
