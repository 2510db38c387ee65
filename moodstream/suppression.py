"""`min_people`: sentiment built from fewer distinct people than this is not shown or
exported, so no one's moods can be read off a camera that sees one or two people.

The aggregator records the camera's minimum in the session meta and the camera live hash
(the larger of its own `min_people` setting and the camera file's, default 1 = off).
Reports hide the sentiment and emotion mix of every second with fewer distinct people
(per-second tracks), and the session's totals when the whole session saw fewer; the
dashboard's camera card hides the live sentiment while fewer faces are in view; History
hides an hour (or day) of rollups built from fewer people (their `people`), and alerts do
not open on a window of fewer people. Counts (frames, faces, people) stay: they say how
much was seen, not how anyone felt. too_few is the one test all of them apply.
"""

from __future__ import annotations

from typing import Any, Mapping

from moodstream.emotions import EMOTIONS

MAX_MIN_PEOPLE = 1000


def min_people_of(raw: Mapping[str, Any]) -> int:
    """The `min_people` of a session meta or camera live hash; 1 (off) when absent or bad."""
    try:
        value = int(raw.get("min_people") or 1)
    except (TypeError, ValueError):
        return 1
    return min(max(value, 1), MAX_MIN_PEOPLE)


def too_few(people, min_people: int):
    """Whether sentiment built from `people` distinct people is hidden: fewer than
    min_people (1 = off). Works element-wise on numpy arrays (History's hours and days)."""
    return (min_people > 1) & (people < min_people)


def suppressed_text(min_people: int) -> str:
    return f"suppressed (fewer than {min_people} people)"


def apply_min_people(report: dict[str, Any], min_people: int) -> dict[str, Any]:
    """The report with sentiment and emotions hidden where fewer than min_people distinct
    people were seen: per second (its `people`) and for the session (its `people`)."""
    if min_people <= 1:
        return report
    note = suppressed_text(min_people)
    timeline = [_suppress_second(entry, min_people, note) for entry in report.get("timeline", [])]
    out = dict(report, timeline=timeline, min_people=min_people)
    if too_few(report.get("people") or 0, min_people) and report.get("faces_detected"):
        # No totals at all ({}): charts and tables then show no mix, as for no faces.
        out.update(mean_sentiment=None, dominant_emotion=None, suppressed=note,
                   emotion_totals={})
    return out


def _suppress_second(entry: dict[str, Any], min_people: int, note: str) -> dict[str, Any]:
    if not entry.get("faces") or not too_few(entry.get("people") or 0, min_people):
        return entry
    return dict(entry, sentiment=None, emotions={e: None for e in EMOTIONS}, suppressed=note)
