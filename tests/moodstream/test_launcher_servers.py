"""The launcher's embedded servers, started side by side (real Tansu and Valkey)."""

from __future__ import annotations

import socket

import psutil
import pytest
import redis

from moodstream.embedded import EmbeddedKafka, EmbeddedServerError
from moodstream.launcher import Stack
from moodstream.supervision import LauncherSettings

pytestmark = [pytest.mark.integration]


def embedded_settings() -> LauncherSettings:
    return LauncherSettings.load(kafka_bootstrap_servers="", redis_url="")


def test_both_embedded_servers_are_up_when_the_stack_is_entered():
    with Stack(embedded_settings()) as stack:
        host, port = stack.settings.kafka_bootstrap_servers.rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=2).close()
        assert redis.Redis.from_url(stack.settings.redis_url).ping()
        pids = [server.pid for server in stack._embedded]
        assert len(pids) == 2 and all(psutil.pid_exists(pid) for pid in pids)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in pids)


def test_a_server_that_fails_to_start_stops_the_other_one_too(monkeypatch):
    monkeypatch.setattr(EmbeddedKafka, "command", lambda self: ["false"])
    started = []
    original = Stack._start_servers

    def noting(stack):
        try:
            original(stack)
        finally:
            started.extend(server.pid for server in stack._embedded)

    monkeypatch.setattr(Stack, "_start_servers", noting)
    with pytest.raises(EmbeddedServerError, match="tansu exited"):
        with Stack(embedded_settings()):
            pass
    assert len(started) == 2
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in started)
