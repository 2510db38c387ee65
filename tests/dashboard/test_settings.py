"""Dashboard settings: defaults, the refresh bound, and the access rule for non-loopback binds."""

from __future__ import annotations

import pytest

from dashboard.settings import DashboardSettings, is_loopback
from moodstream.settings import SettingsError

_ENV = ("MOODSTREAM_DASHBOARD_HOST", "MOODSTREAM_DASHBOARD_PORT", "MOODSTREAM_DASHBOARD_USER", "MOODSTREAM_DASHBOARD_PASSWORD",
        "MOODSTREAM_DASHBOARD_TOKEN", "MOODSTREAM_DASHBOARD_REFRESH_S")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def test_defaults_bind_loopback_and_refresh_within_two_seconds():
    settings = DashboardSettings.load()
    assert (settings.host, settings.port, settings.refresh_s) == ("127.0.0.1", 8050, 2.0)
    settings.check_access()  # loopback needs no credentials


def test_refresh_above_two_seconds_is_refused():
    with pytest.raises(SettingsError, match="refresh_s"):
        DashboardSettings.load(refresh_s=5)


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True),
                                           ("::1", True), ("localhost", True),
                                           ("0.0.0.0", False), ("192.168.1.5", False),
                                           ("dashboard.example", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_public_bind_without_credentials_is_refused():
    with pytest.raises(SettingsError, match="MOODSTREAM_DASHBOARD_TOKEN"):
        DashboardSettings.load(host="0.0.0.0").check_access()


def test_public_bind_with_basic_auth_or_token_is_allowed(monkeypatch):
    monkeypatch.setenv("MOODSTREAM_DASHBOARD_USER", "ops")
    monkeypatch.setenv("MOODSTREAM_DASHBOARD_PASSWORD", "s3cret")
    settings = DashboardSettings.load(host="0.0.0.0")
    settings.check_access()
    assert settings.basic_auth == ("ops", "s3cret")
    assert "s3cret" not in repr(settings)  # secrets never reach a log line via repr
    monkeypatch.delenv("MOODSTREAM_DASHBOARD_USER")
    monkeypatch.delenv("MOODSTREAM_DASHBOARD_PASSWORD")
    monkeypatch.setenv("MOODSTREAM_DASHBOARD_TOKEN", "tok-123")
    settings = DashboardSettings.load(host="0.0.0.0")
    settings.check_access()
    assert settings.bearer_token == "tok-123" and "tok-123" not in repr(settings)


def test_user_without_password_is_a_config_error(monkeypatch):
    monkeypatch.setenv("MOODSTREAM_DASHBOARD_USER", "ops")
    with pytest.raises(SettingsError, match="both"):
        DashboardSettings.load().check_access()


def test_admins_are_a_comma_separated_list_read_from_the_dashboard_name_only(monkeypatch):
    monkeypatch.delenv("MOODSTREAM_DASHBOARD_ADMINS", raising=False)
    assert DashboardSettings.load().admins == ("local",)  # loopback, no credentials: the user
    monkeypatch.setenv("ADMINS", "mallory")  # a bare name changes nothing
    monkeypatch.setenv("MOODSTREAM_DASHBOARD_ADMINS", " boss, ops ,,")
    assert DashboardSettings.load().admins == ("boss", "ops")
    monkeypatch.setenv("MOODSTREAM_DASHBOARD_ADMINS", "")
    assert DashboardSettings.load().admins == ()  # nobody may change thresholds
