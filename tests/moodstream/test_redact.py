"""redact(): no credential of a URL survives, in a URL alone or anywhere in a log line;
redact_webhook(): a webhook URL shows only where it points, never its secret path."""

from __future__ import annotations

import logging

import pytest

from moodstream.settings import redact, redact_webhook

SECRETS = ("pa/ss", "p@ss", "hunter2", "s3cr3t", "abc123", "XXXXSECRET", "sig-value")


@pytest.mark.parametrize("text, expected", [
    # userinfo, the classic and the hard ones
    ("rtsp://admin:s3cret@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
    ("rtsp://admin:pa/ss@cam", "rtsp://***@cam"),
    ("rtsp://admin:pa/ss@cam:554/stream1", "rtsp://***@cam:554/stream1"),
    ("rtsp://admin:p@ss@cam/stream1", "rtsp://***@cam/stream1"),
    ("rtsp://admin:p@s/s@cam/stream1", "rtsp://***@cam/stream1"),
    ("rtsp://admin:pa?ss#x@cam/live", "rtsp://***@cam/live"),
    ("rtsp://admin:p%40ss@cam/live", "rtsp://***@cam/live"),
    ("redis://:pw@host:6379/0", "redis://***@host:6379/0"),
    ("rediss://default:hunter2@redis.example:6380/1", "rediss://***@redis.example:6380/1"),
    ("http://admin@cam/video.mjpg", "http://***@cam/video.mjpg"),
    ("http://user:pw@[::1]:8080/x", "http://***@[::1]:8080/x"),
    ("HTTP://User:PW@Cam/x", "HTTP://***@Cam/x"),
    # nothing to hide: unchanged
    ("opening http://cam/video.mjpg", "opening http://cam/video.mjpg"),
    ("http://cam:8080/live.m3u8", "http://cam:8080/live.m3u8"),
    ("http://cdn/p?email=a@b.com&w=640", "http://cdn/p?email=a@b.com&w=640"),
    ("http://host/a:b@c", "http://host/a:b@c"),  # a colon in the path is not a password
    ("/videos/visit@shop.mp4", "/videos/visit@shop.mp4"),
    ("contact admin@example.com", "contact admin@example.com"),
    ("", ""),
])
def test_userinfo_is_hidden_whatever_the_password_holds(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("name", [
    "pass", "passwd", "password", "PASSWORD", "pwd", "token", "access_token", "Token",
    "key", "api_key", "apiKey", "secret", "client_secret", "sig", "signature",
    "X-Amz-Signature", "X-Amz-Credential", "auth", "authorization", "jsessionid"])
def test_secret_query_parameters_are_hidden_case_insensitively(name):
    url = f"https://cam.example/live.m3u8?w=640&{name}=abc123&fps=5"
    assert redact(url) == f"https://cam.example/live.m3u8?w=640&{name}=***&fps=5"


def test_query_first_parameter_fragment_and_matrix_parameters():
    assert redact("http://c/x?token=abc123") == "http://c/x?token=***"
    assert redact("http://c/cb#access_token=abc123&state=9") == "http://c/cb#access_token=***&state=9"
    # A value runs to the next & ; # or space: a '?' may belong to it, so it is hidden too.
    assert redact("http://c/x;jsessionid=abc123?a=1") == "http://c/x;jsessionid=***"
    assert redact("http://c/x?token=ab?cd&a=1") == "http://c/x?token=***&a=1"
    assert redact("http://c/x?token=") == "http://c/x?token=***"
    # Both at once: userinfo holding '/' and '@', and a signed query.
    assert redact("rtsp://u:p@s/s@cam/x?sig=abc123&ch=1") == "rtsp://***@cam/x?sig=***&ch=1"


def test_every_url_in_free_text_is_redacted():
    line = ("camera entrance: cannot open rtsp://admin:pa/ss@cam:554/s1 (timeout), "
            "fallback http://cdn/live.m3u8?token=abc123; redis redis://:hunter2@r:6379/0")
    assert redact(line) == ("camera entrance: cannot open rtsp://***@cam:554/s1 (timeout), "
                            "fallback http://cdn/live.m3u8?token=***; redis redis://***@r:6379/0")
    quoted = "source='rtsp://admin:s3cr3t@cam/live' url=\"http://x/y?api_key=abc123\""
    assert not any(secret in redact(quoted) for secret in SECRETS), redact(quoted)
    # A scheme glued to other characters is still a URL.
    assert redact("src=_rtsp://u:hunter2@cam/x") == "src=_rtsp://***@cam/x"


def test_unsure_cases_hide_too_much_rather_than_too_little():
    # Is "8080/x" a port and a path, or the password "8080/x"? Hidden either way.
    assert "hunter2" not in redact("rtsp://admin:hunter2/x@cam/y@z")
    assert redact("http://host:8080/x@y") == "http://***@y"


def test_redact_takes_any_object_and_is_idempotent():
    assert redact(ValueError("rtsp://a:hunter2@c/x")) == "rtsp://***@c/x"
    once = redact("rtsp://admin:p@ss@cam/x?token=abc123")
    assert redact(once) == once


def test_a_log_formatter_using_redact_keeps_secrets_out_of_log_records():
    class Redacting(logging.Formatter):
        def format(self, record):
            return redact(super().format(record))

    handler = logging.StreamHandler()
    handler.setFormatter(Redacting("%(message)s"))
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "opening %s", ("rtsp://a:p@ss@c/x",),
                               None)
    assert handler.format(record) == "opening rtsp://***@c/x"


@pytest.mark.parametrize("url, expected", [
    ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/***"),
    ("https://discord.com/api/webhooks/123/XXXXSECRET", "https://discord.com/***"),
    ("https://ops:hunter2@alerts.example:8443/hook?sig=sig-value", "https://alerts.example:8443/***"),
    ("https://u:pa/ss@alerts.example/hook", "https://alerts.example/***"),
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
    ("not a url XXXXSECRET", "***"),
])
def test_webhook_urls_show_only_scheme_and_host(url, expected):
    assert redact_webhook(url) == expected


def test_webhook_failure_is_logged_without_its_secret(caplog):
    from aggregator.alerts import AlertEvent
    from aggregator.webhook import WebhookNotifier
    from moodstream.embedded import free_port

    url = f"http://hook:hunter2@127.0.0.1:{free_port()}/services/T0/B0/XXXXSECRET?token=abc123"
    notifier = WebhookNotifier(url, timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="aggregator.webhook"):
        notifier(AlertEvent(kind="opened", record={"camera_id": "cam-1"}))
        notifier.close()
    assert notifier.failed == 1
    assert "alert webhook http://127.0.0.1:" in caplog.text and "/***" in caplog.text
    assert not any(secret in caplog.text for secret in SECRETS), caplog.text
