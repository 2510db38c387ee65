"""The self-contained HTML session report."""

from __future__ import annotations

from html.parser import HTMLParser

from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS
from moodstream.html_report import report_html
from moodstream.reports import render


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.script_srcs, self.links, self.imgs, self.ids = [], [], 0, set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and "src" in attrs:
            self.script_srcs.append(attrs["src"])
        if tag == "link":
            self.links.append(attrs)
        self.imgs += tag == "img"
        if "id" in attrs:
            self.ids.add(attrs["id"])


def _report(**extra) -> dict:
    timeline = [{"t": t, "frames": 5, "faces": 1, "people": 1, "sentiment": 0.5,
                 "emotions": {e: (1.0 if e == "happy" else 0.0) for e in EMOTIONS}}
                for t in range(3)]
    report = {"session_id": "s-1", "camera_id": "cam-1", "source": "demo.mp4",
              "status": "closed", "started_at": "2026-01-01T00:00:00.000+00:00",
              "ended_at": "2026-01-01T00:00:03.000+00:00", "duration_s": 3,
              "frames_processed": 15, "frames_with_faces": 15, "faces_detected": 15, "people": 1,
              "emotion_totals": {e: (15.0 if e == "happy" else 0.0) for e in EMOTIONS},
              "dominant_emotion": "happy", "mean_sentiment": 0.5,
              "valence_weights": dict(DEFAULT_VALENCE),
              "alerts": [{"status": "resolved", "camera_id": "cam-1", "sentiment": -0.5}],
              "timeline": timeline}
    report.update(extra)
    return report


def test_report_is_self_contained_with_every_chart():
    page = report_html(_report())
    parser = _Page()
    parser.feed(page)
    assert page.startswith("<!DOCTYPE html>")
    assert parser.script_srcs == [] and parser.links == [] and parser.imgs == 0
    assert page.count("Plotly.newPlot") == 4
    assert {"chart-sentiment", "chart-emotions", "chart-people", "chart-distribution",
            "summary", "emotions", "alerts"} <= parser.ids
    assert len(page) > 1_000_000  # plotly.js itself is inline


def test_values_from_redis_are_escaped():
    page = report_html(_report(source="<script>alert(1)</script>", alerts=[]))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "No alerts in this session." in page


def test_reports_render_html_through_the_shared_entry_point():
    assert render(_report(), "html") == report_html(_report())
