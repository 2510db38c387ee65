"""`python -m dashboard` as a user runs it: refusals are one line and a non-zero exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from moodstream.embedded import free_port
from tests.conftest import REPO
from tests.dashboard.conftest import dashboard_process


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DASHBOARD_", "REDIS_URL", "MOODSTREAM_"))}
    env.update(MOODSTREAM_CONNECT_TIMEOUT_S="1", **extra)
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dashboard", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_public_bind_without_credentials_is_refused():
    result = _run(_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"), "--host", "0.0.0.0")
    assert result.returncode == 2
    line = _one_line(result)
    assert "refusing" in line and "MOODSTREAM_DASHBOARD_TOKEN" in line and "MOODSTREAM_DASHBOARD_USER" in line


def test_credentials_unlock_a_public_bind_and_secrets_stay_out_of_errors():
    # The access check passes with credentials; then Redis is unreachable: one line, exit 1.
    url = f"redis://ops:redis-secret@127.0.0.1:{free_port()}/0"
    result = _run(_env(REDIS_URL=url, MOODSTREAM_DASHBOARD_USER="ops", MOODSTREAM_DASHBOARD_PASSWORD="dash-secret"),
                  "--host", "0.0.0.0")
    assert result.returncode == 1
    line = _one_line(result)
    assert "cannot reach Redis" in line
    assert "redis-secret" not in result.stderr + result.stdout
    assert "dash-secret" not in result.stderr + result.stdout


@pytest.mark.parametrize("env_extra,args,needle", [
    ({}, (), "REDIS_URL is not set"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, ("--refresh-s", "5"), "refresh_s"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, ("--port", "0"), "port"),
])
def test_bad_configuration_is_one_line_exit_2(env_extra, args, needle):
    result = _run(_env(**env_extra), *args)
    assert result.returncode == 2 and needle in _one_line(result)


@pytest.mark.integration
@pytest.mark.slow  # starts the whole app (Dash import) in a subprocess
def test_port_in_use_is_one_line_exit_1(redis_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(_env(REDIS_URL=redis_server.url), "--port", str(port))
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in _one_line(result)


@pytest.mark.integration
@pytest.mark.slow  # starts the whole app (Dash import) in a subprocess
def test_serves_with_waitress_and_stops_cleanly_on_sigterm(redis_server):
    with dashboard_process(_env(REDIS_URL=redis_server.url)) as (url, proc):
        with urllib.request.urlopen(url + "/") as response:
            assert response.status == 200
            assert response.headers["Server"] == "waitress"  # not Flask's dev server
        with urllib.request.urlopen(url + "/_dash-layout") as response:
            assert b'"tick"' in response.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "Traceback" not in proc.stderr.read()


@pytest.mark.integration
@pytest.mark.slow  # starts the whole app (Dash import) in a subprocess
def test_token_protects_every_route_over_http(redis_server):
    env = _env(REDIS_URL=redis_server.url, MOODSTREAM_DASHBOARD_TOKEN="tok-abc")
    with dashboard_process(env) as (url, _proc):
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url + "/_dash-layout")
        assert denied.value.code == 401
        request = urllib.request.Request(url + "/_dash-layout",
                                         headers={"Authorization": "Bearer tok-abc"})
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
