"""Fixtures for the dashboard tests: a filled real Redis, the real CLI server, headless Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moodstream.embedded import free_port
from tests.conftest import REPO, redis_namespace

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1280,1600")


def find_browser() -> tuple[str, str]:
    """Debian chromium + chromedriver from PATH, else from .cache/chromium (ensure_test_deps.sh)."""
    local = REPO / ".cache" / "chromium" / "usr" / "bin"
    chromium = shutil.which("chromium") or str(local / "chromium")
    driver = shutil.which("chromedriver") or str(local / "chromedriver")
    if not (os.access(chromium, os.X_OK) and os.access(driver, os.X_OK)):
        pytest.fail("headless Chromium missing: run `sh scripts/ensure_test_deps.sh`")
    return chromium, driver


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited with {proc.returncode}: {proc.stderr.read()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"dashboard did not open port {port} in {timeout:.0f}s")


@contextlib.contextmanager
def dashboard_process(env: dict[str, str], *args: str):
    """`python -m dashboard` as a user runs it; yields (base url, process); always stopped."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port), *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def filled_redis(redis_server):
    """A Redis prefix holding sessions written by the aggregator: two live cameras, one
    closed recorded session, an open alert on cam-a. Yields (env for the dashboard, client)."""
    from tests.dashboard.redis_fill import Filler

    with redis_namespace(redis_server, 15) as (client, prefix, url):
        filler = Filler(client, prefix)
        now = time.time()
        filler.session("cam-a", "sess-a0", now - 7200, 30, 0.5, 0.6, end=True)
        filler.session("cam-a", "sess-a1", now - 120, 120, 0.8, -0.9)  # turns sour: alert
        filler.session("cam-b", "sess-b1", now - 60, 60, -0.2, 0.9, people=3)
        yield dict(os.environ, REDIS_URL=url, MOODSTREAM_REDIS_PREFIX=prefix,
                   PYTHONUNBUFFERED="1"), client, prefix


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
    """One headless Chromium for the module (each start costs seconds on 2 cores)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}")
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "download.directory_upgrade": True, "safebrowsing.enabled": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        # Headless Chromium ignores the download prefs unless told through CDP.
        driver.execute_cdp_cmd("Page.setDownloadBehavior",
                               {"behavior": "allow", "downloadPath": str(downloads)})
        yield driver
    finally:
        driver.quit()
