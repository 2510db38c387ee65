"""Pure HTML builders of the dashboard pages."""

from __future__ import annotations

from dashboard import layout
from dashboard.data import CameraLive, SessionRow


def _texts(component) -> list[str]:
    """Every string inside a Dash component tree, depth first."""
    if isinstance(component, (str, int, float)):
        return [str(component)]
    children = getattr(component, "children", None)
    if children is None:
        return []
    if not isinstance(children, (list, tuple)):
        children = [children]
    return [text for child in children for text in _texts(child)]


def test_alert_line_reads_the_aggregator_record():
    record = {"id": "a1", "camera_id": "cam-a", "session_id": "s-1", "status": "open",
              "opened_at": 1_767_225_600.0, "threshold": -0.35, "sentiment": -0.42,
              "worst": -0.61, "window_s": 10.0, "resolved_at": None}
    line = layout.describe_alert(record)
    assert line == ("open negative-sentiment alert · session s-1 · window mean -0.42 · "
                    "worst -0.61 · threshold -0.35 · since 2026-01-01 00:00:00 UTC")
    banner = layout.alerts_banner({"cam-a": record})
    assert banner[0].children.startswith("Alert on cam-a: open")
    assert layout.describe_alert({}) == "open negative-sentiment alert"  # sparse record


def test_cameras_table_marks_alerts_and_links_sessions():
    cams = [CameraLive("cam-a", "s-1", 100.0, -0.5, 2, 2, "angry", alert=False),
            CameraLive("cam-b", None, 40.0, None, 0, 0, None)]
    table = layout.cameras_table(cams, {"cam-a": {}}, now=110.0)
    texts = _texts(table)
    assert "ALERT" in texts and "-0.50" in texts and "10 s ago" in texts and "s-1" in texts
    assert "—" in texts  # cam-b: no sentiment, no session
    assert layout.cameras_table([], {}, 0).id == "no-cameras"


def test_session_link_quotes_the_id():
    assert layout.session_link("a:b").href == "/session/a%3Ab"


def test_sessions_table():
    rows = [SessionRow("s-1", "cam-a", "closed", 0.0, 60.0, 120, 100, 0.25)]
    assert "+0.25" in _texts(layout.sessions_table(rows))
    assert layout.sessions_table([]).id == "sessions-empty"
