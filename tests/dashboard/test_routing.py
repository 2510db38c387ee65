"""Pure helpers of the pages: id validation, filters; and the pages Dash Pages registers."""

from __future__ import annotations

from datetime import datetime, timezone

from dashboard.callbacks import session_filter, session_id_of


def test_pages_are_registered_with_dash_pages(monkeypatch):
    import dash
    from dash._pages import _path_to_page

    from dashboard.app import create_app
    from dashboard.settings import DashboardSettings

    monkeypatch.delenv("MOODSTREAM_DASHBOARD_REFRESH_S", raising=False)
    create_app(DashboardSettings.load(redis_url="redis://127.0.0.1:1/0"), _NoData())
    paths = {page["module"]: page["path"] for page in dash.page_registry.values()}
    assert paths["dashboard.pages.overview"] == "/"
    assert paths["dashboard.pages.sessions"] == "/sessions"
    page, variables = _path_to_page("session/cam-1.2026:01")
    assert page["module"] == "dashboard.pages.session" and variables == {"session_id": "cam-1.2026:01"}
    assert _path_to_page("nope")[0] == {}  # unknown: Dash shows not_found_404


class _NoData:
    """create_app only keeps the data source for its callbacks."""

    client = keys = None


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
    assert not flt.oldest_first and session_filter(None, None, None, None, None,
                                                   "oldest").oldest_first
    assert flt.status is None and session_filter(None, None, None, None, None, None,
                                                 "ending").status == "ending"
    assert session_filter(None, None, None, None, None, None, "bogus").status is None
