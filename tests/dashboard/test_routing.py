"""Pure helpers of the callbacks: page routing, id validation, filters."""

from __future__ import annotations

from datetime import datetime, timezone

from dashboard.callbacks import page_of, session_filter, session_id_of


def test_page_of():
    assert page_of(None) == page_of("/") == "overview"
    assert page_of("/sessions") == "sessions"
    assert page_of("/session/abc") == "session"
    assert page_of("/nope") == "missing"


def test_session_id_of_accepts_only_valid_ids():
    assert session_id_of("/session/cam-1.2026:01") == "cam-1.2026:01"
    assert session_id_of("/session/a%3Ab") == "a:b"
    for crafted in ("/session/", "/session/..%2F..%2Fetc%2Fpasswd", "/session/a b",
                    "/session/x*", "/session/ms:session:x:meta%0A", "/sessions"):
        assert session_id_of(crafted) is None, crafted


def test_session_filter_from_widget_values():
    flt = session_filter("cam-a", "2026-03-01", "2026-03-02", -0.5, None)
    day = datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()
    assert (flt.camera_id, flt.start_ts, flt.end_ts) == ("cam-a", day, day + 2 * 86400)
    assert (flt.min_sentiment, flt.max_sentiment) == (-0.5, None)
    assert session_filter(None, None, None, None, None).start_ts is None
