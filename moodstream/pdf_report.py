"""Reports as printable PDF (A4 portrait): the HTML report's tables and charts on paper.

A session report (moodstream.reports) or a camera's day/week report
(moodstream.period_report). Tables take their fields from moodstream.html_report, so both
formats list the same numbers; charts are the shared figure builders (moodstream.figures)
drawn as PNG images by moodstream.chart_images. The text is real text (searchable,
copyable), set in DejaVu Sans, which matplotlib ships, so any camera id or emotion name
prints without a system font. Aggregated numbers only, as in every report.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import matplotlib
from fpdf import FPDF
from fpdf.fonts import FontFace

from moodstream.chart_images import figure_png
from moodstream.emotions import EMOTIONS
from moodstream.figures import period_figures, session_figures
from moodstream.html_report import PERIOD_FIELDS, SESSION_COLUMNS, SUMMARY_FIELDS

ChartRenderer = Callable[..., bytes]  # (plotly figure, width_in, height_in) -> PNG bytes
_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_FONT = "DejaVu"
_PAGE_W_MM = 180  # A4 (210 mm) less 15 mm margins either side
_CHART_H_MM = 68
_MM_PER_IN = 25.4
_ALERT_COLUMNS = (("Status", "status"), ("Opened", "opened_at"), ("Resolved", "resolved_at"),
                  ("Window mean", "sentiment"), ("Worst", "worst"), ("Threshold", "threshold"))
_NOTE = ("Aggregated numbers only: moodstream stores no face images. Sentiment is the expected "
         "valence of each face's emotion distribution, in [-1, 1].")


class _Document(FPDF):
    def __init__(self, title: str):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.report_title = title
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)
        self.add_font(_FONT, "", str(_FONTS / "DejaVuSans.ttf"))
        self.add_font(_FONT, "B", str(_FONTS / "DejaVuSans-Bold.ttf"))
        self.set_title(title)
        self.set_creator("moodstream")

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(_FONT, "", 7)
        self.set_text_color(120)
        self.cell(0, 4, f"{self.report_title} · page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0)


def _text(value: Any) -> str:
    return "—" if value in (None, "") else str(value)


def _heading(pdf: _Document, text: str) -> None:
    pdf.set_font(_FONT, "B", 12)
    pdf.ln(2)
    pdf.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, "", 8)


def _table(pdf: _Document, header: Sequence[str] | None, rows: Iterable[Sequence[Any]],
           widths: Sequence[int] | None = None, size: int = 8) -> None:
    pdf.set_font(_FONT, "", size)
    with pdf.table(col_widths=widths, width=_PAGE_W_MM, line_height=5, text_align="LEFT",
                   first_row_as_headings=header is not None, padding=(0.5, 1.5),
                   headings_style=FontFace(emphasis="BOLD", fill_color=(243, 243, 243))) as table:
        for row in ([header] if header else []) + [list(r) for r in rows]:
            cells = table.row()
            for value in row:
                cells.cell(_text(value))


def _summary(pdf: _Document, report: Mapping[str, Any], fields) -> None:
    _heading(pdf, "Summary")
    _table(pdf, None, ((label, report.get(key)) for label, key in fields), widths=(1, 2))


def _emotions(pdf: _Document, report: Mapping[str, Any]) -> None:
    totals = report.get("emotion_totals") or {}
    weights = report.get("valence_weights") or {}
    whole = sum(totals.values())
    _heading(pdf, "Emotions")
    _table(pdf, ("Emotion", "Share of faces", "Probability sum", "Valence weight"),
           ((e, f"{totals.get(e, 0.0) / whole:.1%}" if whole > 0 else None, totals.get(e),
             weights.get(e)) for e in EMOTIONS))


def _charts(pdf: _Document, figures: Mapping[str, Any], chart_png: ChartRenderer) -> None:
    pdf.add_page()
    _heading(pdf, "Charts")
    for fig in figures.values():
        png = chart_png(fig, _PAGE_W_MM / _MM_PER_IN, _CHART_H_MM / _MM_PER_IN)
        if pdf.will_page_break(_CHART_H_MM + 2):
            pdf.add_page()
        pdf.image(io.BytesIO(png), w=_PAGE_W_MM, h=_CHART_H_MM)
        pdf.ln(2)


def _short_time(iso: Any) -> Any:
    """2026-11-30T09:00:00.000+00:00 -> 2026-11-30 09:00:00 (the table's time zone is UTC,
    as the session reports write it); anything else as it is."""
    if isinstance(iso, str) and iso.endswith("+00:00") and "T" in iso:
        return iso[:19].replace("T", " ")
    return iso


def _line(pdf: _Document, text: str) -> None:
    pdf.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")


def _when(epoch: Any) -> str | None:
    try:
        return datetime.fromtimestamp(float(epoch), timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _alerts(pdf: _Document, alerts: Sequence[Mapping[str, Any]]) -> None:
    _heading(pdf, "Alerts")
    if not alerts:
        _line(pdf, "No alerts.")
        return
    _table(pdf, [label for label, _ in _ALERT_COLUMNS],
           ([a.get("status"), _when(a.get("opened_at")), _when(a.get("resolved_at")),
             a.get("sentiment"), a.get("worst"), a.get("threshold")] for a in alerts),
           widths=(2, 3, 3, 2, 2, 2))


def _document(title: str, subtitle: str) -> _Document:
    pdf = _Document(title)
    pdf.add_page()
    pdf.set_font(_FONT, "B", 16)
    pdf.multi_cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, "", 8)
    pdf.set_text_color(90)
    pdf.multi_cell(0, 5, f"{subtitle}\n{_NOTE}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    return pdf


def _pdf(report: Mapping[str, Any], title: str, subtitle: str, fields, figures,
         chart_png: ChartRenderer, *sections: Callable[[_Document], None]) -> bytes:
    pdf = _document(title, subtitle)
    _summary(pdf, report, fields)
    _emotions(pdf, report)
    for section in sections:
        section(pdf)
    _alerts(pdf, report.get("alerts") or [])
    _charts(pdf, figures, chart_png)
    return bytes(pdf.output())


def report_pdf(report: Mapping[str, Any], chart_png: ChartRenderer = figure_png) -> bytes:
    """One session's report as PDF bytes."""
    return _pdf(report, f"moodstream session {report.get('session_id', '')}",
                f"Camera {_text(report.get('camera_id'))} · "
                f"{_text(report.get('started_at'))} to {_text(report.get('ended_at'))}",
                SUMMARY_FIELDS, session_figures(report), chart_png)


def period_pdf(report: Mapping[str, Any], chart_png: ChartRenderer = figure_png) -> bytes:
    """A camera's day or week report as PDF bytes."""
    return _pdf(report, f"moodstream camera {report.get('camera_id', '')} · "
                f"{report.get('label', '')}",
                f"{_text(report.get('start'))} to {_text(report.get('end'))} "
                f"({_text(report.get('timezone'))}): every session that started in it",
                PERIOD_FIELDS, period_figures(report), chart_png,
                lambda pdf: _sessions(pdf, report.get("sessions") or []))


def _sessions(pdf: _Document, sessions: Sequence[Mapping[str, Any]]) -> None:
    _heading(pdf, "Sessions")
    if not sessions:
        _line(pdf, "No session of this camera started in this period.")
        return
    _table(pdf, [label for label, _ in SESSION_COLUMNS],
           ([_short_time(s.get(key)) if key.endswith("_at") else s.get(key)
             for _, key in SESSION_COLUMNS] for s in sessions),
           widths=(12, 9, 9, 5, 5, 5, 6, 6, 4), size=7)
