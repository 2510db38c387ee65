"""`moodstream demo` (what `make demo` runs): live data on the dashboard, clean Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.conftest import REPO
from tests.dashboard.conftest import CHROME_FLAGS, find_browser
from tests.moodstream.proc_utils import processes_with_marker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.browser]

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
        assert (tmp_path / "moodstream-stack.json").exists()  # `moodstream report` can find it
    finally:
        if driver:
            driver.quit()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        code = proc.wait(60)
    assert code == 0
    assert processes_with_marker(marker) == [], "demo left processes behind"
    assert not (tmp_path / "moodstream-stack.json").exists()
