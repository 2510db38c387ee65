"""PDF reports: real PDFs (parsed back with pypdf), charts drawn from the shared figure
builders in the Okabe-Ito colours, and `moodstream report SESSION --report x.pdf` on a real
Valkey filled by the real aggregator."""

from __future__ import annotations

import io
import time
import uuid
from datetime import datetime

import pypdf
import pytest
import redis
from PIL import Image

from moodstream import figures
from moodstream.chart_images import DPI, figure_png
from moodstream.emotions import EMOTIONS
from moodstream.pdf_report import period_pdf, report_pdf
from tests.dashboard.redis_fill import Filler
from tests.moodstream.test_cli_errors import run_cli
from tests.moodstream.test_figures import _timeline


def _session_report() -> dict:
    return {
        "session_id": "cam-a-20261130T090000-ab12", "camera_id": "cam-a",
        "source": "rtsp://café.example/entrance", "status": "closed",
        "started_at": "2026-11-30T09:00:00.000+00:00", "ended_at": "2026-11-30T09:05:00.000+00:00",
        "duration_s": 300, "frames_processed": 1500, "skipped_frames": 0,
        "frames_with_faces": 1234, "faces_detected": 2468, "people": 7,
        "dominant_emotion": "happy", "mean_sentiment": 0.4213,
        "emotion_totals": {e: 0.0 for e in EMOTIONS} | {"happy": 1480.8, "neutral": 987.2},
        "valence_weights": {"happy": 1.0, "neutral": 0.0},
        "alerts": [{"status": "resolved", "opened_at": 1796029200, "resolved_at": 1796029260,
                    "sentiment": -0.41, "worst": -0.63, "threshold": -0.3}],
        "timeline": _timeline(300),
    }


def _text(pdf: pypdf.PdfReader) -> str:
    return "\n".join(page.extract_text() for page in pdf.pages)


def _colours(png: bytes) -> set[str]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return {"#%02X%02X%02X" % rgb for _count, rgb in image.getcolors(maxcolors=1 << 20)}


def test_session_pdf_is_a_real_pdf_with_the_numbers_as_text_and_the_charts_as_images():
    data = report_pdf(_session_report())
    assert data.startswith(b"%PDF-")
    pdf = pypdf.PdfReader(io.BytesIO(data))
    text = _text(pdf)
    assert len(pdf.pages) == 3  # summary, emotions and alerts; then the four charts
    for expected in ("moodstream session cam-a-20261130T090000-ab12", "Camera cam-a",
                     "Frames processed 1500", "Faces detected 2468", "People (tracks) 7",
                     "Mean sentiment 0.4213", "happy 60.0% 1480.8 1.0", "resolved",
                     "2026-11-30 09:00:00Z", "rtsp://café.example/entrance", "page 1 of 3"):
        assert expected in text, expected
    assert sum(len(page.images) for page in pdf.pages) == 4
    assert pdf.metadata.title == "moodstream session cam-a-20261130T090000-ab12"


def test_every_page_of_the_pdf_renders_with_a_real_pdf_renderer():
    """PDFium (the renderer in Chromium; pdftoppm needs Debian's poppler, which a fresh
    machine without root lacks) draws every page: ink on paper, and the charts in colour."""
    import pypdfium2

    document = pypdfium2.PdfDocument(report_pdf(_session_report()))
    assert len(document) == 3
    for page in document:
        image = page.render(scale=1).to_pil().convert("RGB")
        assert abs(image.size[0] - 595) <= 1 and abs(image.size[1] - 842) <= 1  # A4, 72 dpi
        assert image.getextrema() != ((255, 255), (255, 255), (255, 255)), "a blank page"
    charts = document[len(document) - 1].render(scale=2).to_pil().convert("HSV")
    saturated = sum(count for count, (_h, sat, _v) in charts.getcolors(maxcolors=1 << 22) if sat > 120)
    assert saturated > 1000, "the chart page rendered without coloured charts"


def test_period_pdf_lists_the_sessions_and_says_when_there_are_none():
    report = {"camera_id": "cam-b", "period": "day", "label": "2026-11-30", "timezone": "UTC",
              "start": "2026-11-30T00:00:00+00:00", "end": "2026-12-01T00:00:00+00:00",
              "session_count": 2, "frames_processed": 90, "faces_detected": 40, "people": 3,
              "emotion_totals": {"happy": 30.0, "sad": 10.0}, "mean_sentiment": 0.55,
              "alerts": [], "sessions": [
                  {"session_id": "sb-1", "frames_processed": 60, "faces_detected": 30,
                   "emotion_totals": {"happy": 25.0, "sad": 5.0}},
                  {"session_id": "sb-2", "frames_processed": 30, "faces_detected": 10,
                   "emotion_totals": {"happy": 5.0, "sad": 5.0}}],
              "timeline": [{"start": f"2026-11-30T{h:02d}:00:00",
                            "frames": 45 if h in (9, 14) else 0,
                            "faces": 20 if h in (9, 14) else 0, "peak_people": 2,
                            "sentiment": 0.55 if h in (9, 14) else None, "emotions": {}}
                           for h in range(24)]}
    pdf = pypdf.PdfReader(io.BytesIO(period_pdf(report)))
    text = _text(pdf)
    assert "moodstream camera cam-b · 2026-11-30" in text
    assert "sb-1" in text and "sb-2" in text and "Sessions 2" in text
    assert "Frames processed 90" in text and "No alerts." in text
    assert sum(len(page.images) for page in pdf.pages) == 4
    empty = dict(report, sessions=[], session_count=0, timeline=[])
    assert "No session of this camera started in this period." in _text(
        pypdf.PdfReader(io.BytesIO(period_pdf(empty))))


def test_charts_keep_the_dashboards_okabe_ito_emotion_colours():
    totals = {e: float(i + 1) for i, e in enumerate(EMOTIONS)}
    colours = _colours(figure_png(figures.emotion_totals(totals)))
    assert set(figures.EMOTION_COLORS.values()) <= colours
    stacked = _colours(figure_png(figures.emotion_area(_timeline(20))))
    assert {figures.EMOTION_COLORS["happy"], figures.EMOTION_COLORS["neutral"]} <= stacked


def test_every_shared_builder_draws_as_an_image_of_the_asked_size():
    session = _session_report()
    period_rows = [{"start": f"2026-11-30T{h:02d}:00:00", "frames": 10, "faces": h,
                    "peak_people": h % 3, "sentiment": None if h % 4 == 0 else 0.1 * (h % 5),
                    "emotions": {}} for h in range(24)]
    moments = [datetime(2026, 11, 30, 12, 0, s) for s in range(30)]
    figs = [*figures.session_figures(session).values(),
            *figures.period_figures({"period": "day", "camera_id": "c", "timeline": period_rows,
                                     "emotion_totals": {"sad": 1.0},
                                     "sessions": [{"session_id": "s", "emotion_totals":
                                                   {"sad": 1.0}}]}).values(),
            figures.sentiment_trend({"a": list(zip(moments, [0.2] * 30))}),
            figures.sparkline(list(zip(moments, [0.1] * 30))),
            figures.emotion_mix({"cam-a": {"happy": 2.0, "angry": 1.0}}),
            figures.empty_figure("no faces seen yet", "Emotion mix")]
    for fig in figs:
        image = Image.open(io.BytesIO(figure_png(fig, 6.0, 2.5)))
        assert image.format == "PNG"
        assert image.size == (round(6.0 * DPI), round(2.5 * DPI))
        assert len(image.getcolors(maxcolors=1 << 20)) > 2  # something is drawn on it


@pytest.mark.slow
def test_cli_writes_a_sessions_report_as_pdf(redis_server, tmp_path):
    prefix = f"f{uuid.uuid4().hex[:8]}"
    url = f"redis://{redis_server.host}:{redis_server.port}/11"
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        Filler(client, prefix).session("cam-pdf", "pdf-s1", time.time() - 100, 40, 0.5, -0.5,
                                       people=2, end=True)
        path = tmp_path / "out" / "s.pdf"
        result = run_cli("report", "pdf-s1", "--report", str(path), REDIS_URL=url,
                         MOODSTREAM_REDIS_PREFIX=prefix)
        assert result.returncode == 0, result.stderr
        assert f"wrote {path}: 80 frames" in result.stdout
        text = _text(pypdf.PdfReader(path))
        assert "moodstream session pdf-s1" in text and "Camera cam-pdf" in text
        assert "Frames processed 80" in text
        # 40 s at 2 fps, every 7th second (5 of them) without faces, 2 people.
        assert "Frames with faces 70" in text and "Faces detected 140" in text
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()
