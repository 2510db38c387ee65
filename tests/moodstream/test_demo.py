"""`moodstream demo` (what `make demo` runs): live data on the dashboard, clean Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from moodstream.redis_keys import RedisKeys
from tests.conftest import REPO
from tests.dashboard.conftest import CHROME_FLAGS, find_browser
from tests.moodstream.proc_utils import processes_with_marker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEMO_CAMERAS = ("store-entrance", "checkout-2")
SENTIMENT = re.compile(r"[+-]?\d\.\d\d")


def browser(tmp_path):
    chromium, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chrome'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def read_dashboard_url(proc: subprocess.Popen, deadline: float) -> str:
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"demo exited early with {proc.returncode}")
        match = re.search(r"dashboard: (http://\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError("demo never printed its dashboard URL")


def cameras_with_sentiment(driver) -> set[str]:
    # One JS call: Dash remounts the table on every refresh, so element handles go stale.
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#cameras-table tr')).map(r => r.innerText)")
    return {cam for text in rows for cam in DEMO_CAMERAS if cam in text and SENTIMENT.search(text)}


@pytest.mark.browser
def test_demo_shows_live_sentiment_for_two_cameras_then_stops_cleanly(tmp_path):
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(MOODSTREAM_TEST_MARKER=marker, XDG_RUNTIME_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "moodstream", "demo", "--port", "0"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    driver = None
    try:
        url = read_dashboard_url(proc, started + 60)
        driver = browser(tmp_path)
        driver.get(url)
        seen: set[str] = set()
        while time.monotonic() < started + 60 and seen != set(DEMO_CAMERAS):
            time.sleep(1.0)
            seen = cameras_with_sentiment(driver)
        assert seen == set(DEMO_CAMERAS), f"live sentiment within 60 s for {DEMO_CAMERAS}, saw {seen}"
        workers = driver.execute_script(
            "const l = document.getElementById('workers-line'); return l ? l.innerText : ''")
        assert "Workers:" in workers and "detector running" in workers, workers
        assert (tmp_path / "moodstream-stack.json").exists()  # `moodstream report` can find it
    finally:
        if driver:
            driver.quit()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        code = proc.wait(60)
    assert code == 0
    assert processes_with_marker(marker) == [], "demo left processes behind"
    assert not (tmp_path / "moodstream-stack.json").exists()


def child_cmdlines(marker: str, launcher_pid: int) -> dict[int, str]:
    """argv of every process the demo started (they inherit the marker), as `ps` shows it."""
    lines = {}
    for pid in processes_with_marker(marker):
        if pid != launcher_pid:
            try:
                lines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue  # exited meanwhile
    return lines


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def test_demo_restarts_a_killed_worker_and_never_shows_a_camera_password(tmp_path):
    """`make demo SOURCE=rtsp://user:pass@...`: the password reaches ingest through its
    environment, never a child's argv; kill -9 on the detector is a logged restart, and the
    workers' health is in Redis for the dashboard."""
    marker, password = uuid.uuid4().hex, "s3cret-" + uuid.uuid4().hex[:6]
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env.update(MOODSTREAM_TEST_MARKER=marker, XDG_RUNTIME_DIR=str(tmp_path), PYTHONUNBUFFERED="1",
               MOODSTREAM_LAUNCHER_BACKOFF_INITIAL_S="0.5")
    source = f"rtsp://viewer:{password}@127.0.0.1:9/stream1"  # nothing listens: ingest retries
    stderr_path = tmp_path / "demo.err"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "moodstream", "demo", "--source", source,
                                 "--port", "0"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=stderr, text=True)
    try:
        read_dashboard_url(proc, time.monotonic() + 90)
        children = child_cmdlines(marker, proc.pid)
        assert any("-m ingest" in line for line in children.values()), children
        assert not [line for line in children.values() if password in line]
        state = json.loads((tmp_path / "moodstream-stack.json").read_text())
        client = redis.Redis.from_url(state["redis_url"], decode_responses=True)
        key = RedisKeys(state["redis_prefix"]).workers

        def health() -> dict:
            return {name: json.loads(raw) for name, raw in client.hgetall(key).items()}

        workers = wait_for(lambda: health() if "detector" in health() else None, 10, "health")
        assert set(workers) >= {"aggregator", "detector", "dashboard", "ingest:camera-1",
                                "tansu", "valkey"}
        killed = workers["detector"]["pid"]
        os.kill(killed, signal.SIGKILL)
        restarted = wait_for(lambda: health()["detector"]["restarts"] == 1 and health()["detector"],
                             15, "detector restart in the health record")
        assert restarted["pid"] != killed and restarted["last_exit"] == -signal.SIGKILL
        line = f"detector (pid {killed}) stopped unexpectedly (killed by SIGKILL); restart 1"
        assert line in stderr_path.read_text()
        assert password not in stderr_path.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0
    assert processes_with_marker(marker) == [], "demo left processes behind"
