"""A session report, or a camera's day/week report, as one self-contained HTML file:
summary tables plus the charts.

plotly.js is inlined once, so the file opens offline and can be mailed or archived as is.
Every value from Redis is HTML-escaped; the report never holds images, only numbers.
"""

from __future__ import annotations

import html
from typing import Any, Mapping

import plotly.io as pio

from moodstream.emotions import EMOTIONS
from moodstream.figures import period_figures, session_figures

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
th { background: #f3f3f3; }
.chart { margin: 1.5em 0; }
footer { color: #777; font-size: 0.85em; margin-top: 2em; }
"""

SUMMARY_FIELDS = (
    ("Session", "session_id"), ("Camera", "camera_id"), ("Source", "source"),
    ("Status", "status"), ("Started", "started_at"), ("Ended", "ended_at"),
    ("Duration (s)", "duration_s"), ("Frames processed", "frames_processed"),
    ("Frames with faces", "frames_with_faces"), ("Faces detected", "faces_detected"),
    ("People (tracks)", "people"), ("Dominant emotion", "dominant_emotion"),
    ("Mean sentiment", "mean_sentiment"),
    ("Privacy", "suppressed"),  # "suppressed (fewer than N people)" (moodstream.suppression)
)
# A camera's day or week (moodstream.period_report): the same numbers, summed over sessions.
PERIOD_FIELDS = (
    ("Camera", "camera_id"), ("Period", "label"), ("Time zone", "timezone"),
    ("From", "start"), ("To", "end"), ("Sessions", "session_count"),
    ("Frames processed", "frames_processed"), ("Frames with faces", "frames_with_faces"),
    ("Faces detected", "faces_detected"), ("People (tracks, per session)", "people"),
    ("Dominant emotion", "dominant_emotion"), ("Mean sentiment", "mean_sentiment"),
    ("Sessions hidden (min_people)", "suppressed_sessions"),
)
SESSION_COLUMNS = (
    ("Session", "session_id"), ("Started", "started_at"), ("Ended", "ended_at"),
    ("Frames", "frames_processed"), ("Faces", "faces_detected"), ("People", "people"),
    ("Dominant", "dominant_emotion"), ("Sentiment", "mean_sentiment"), ("Alerts", "alerts"),
)


def _cell(value: Any) -> str:
    return html.escape("—" if value in (None, "") else str(value))


def _rows(pairs) -> str:
    return "\n".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in pairs)


def _summary_table(report: Mapping[str, Any], fields=SUMMARY_FIELDS) -> str:
    return f"<table id='summary'>{_rows((label, report.get(key)) for label, key in fields)}</table>"


def _emotion_table(report: Mapping[str, Any]) -> str:
    totals = report.get("emotion_totals") or {}
    weights = report.get("valence_weights") or {}
    body = "\n".join(
        f"<tr><td>{e}</td><td>{_cell(totals.get(e))}</td><td>{_cell(weights.get(e))}</td></tr>"
        for e in EMOTIONS)
    return ("<table id='emotions'><tr><th>Emotion</th><th>Probability sum</th>"
            f"<th>Valence weight</th></tr>{body}</table>")


def _alerts_table(report: Mapping[str, Any]) -> str:
    alerts = report.get("alerts") or []
    if not alerts:
        return "<p>No alerts in this session.</p>"
    keys = sorted({k for alert in alerts for k in alert})
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(a.get(k))}</td>" for k in keys) + "</tr>"
                     for a in alerts)
    return f"<table id='alerts'><tr>{head}</tr>{body}</table>"


def _sessions_table(sessions) -> str:
    if not sessions:
        return "<p>No session of this camera started in this period.</p>"
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in SESSION_COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(s.get(key))}</td>" for _, key in SESSION_COLUMNS)
                     + "</tr>" for s in sessions)
    return f"<table id='sessions'><tr>{head}</tr>{body}</table>"


def _charts(figs: Mapping[str, Any]) -> str:
    parts = []
    for index, (name, fig) in enumerate(figs.items()):
        # The first chart carries plotly.js inline; the others reuse it.
        div = pio.to_html(fig, full_html=False, include_plotlyjs=(index == 0),
                          div_id=f"chart-{name}", config={"displaylogo": False})
        parts.append(f"<div class='chart'>{div}</div>")
    return "\n".join(parts)


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{body}
<footer>Aggregated numbers only: moodstream stores no face images.
Sentiment is the expected valence of each face's emotion distribution, in [-1, 1].</footer>
</body>
</html>
"""


def report_html(report: Mapping[str, Any]) -> str:
    """The whole session report page as one string (UTF-8 HTML5, no external resources)."""
    return _page(f"moodstream session {report.get('session_id', '')}", f"""<h2>Summary</h2>
{_summary_table(report)}
<h2>Emotions</h2>
{_emotion_table(report)}
<h2>Charts</h2>
{_charts(session_figures(report))}
<h2>Alerts</h2>
{_alerts_table(report)}""")


def period_html(report: Mapping[str, Any]) -> str:
    """A camera's day or week report page (moodstream.period_report)."""
    title = f"moodstream camera {report.get('camera_id', '')} · {report.get('label', '')}"
    return _page(title, f"""<h2>Summary</h2>
{_summary_table(report, PERIOD_FIELDS)}
<h2>Emotions</h2>
{_emotion_table(report)}
<h2>Charts</h2>
{_charts(period_figures(report))}
<h2>Sessions</h2>
{_sessions_table(report.get("sessions") or [])}
<h2>Alerts</h2>
{_alerts_table(report)}""")
