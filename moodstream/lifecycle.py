"""Process lifecycle, the same in every service: SIGTERM is handled exactly like SIGINT,
and start-up is timed from the process's own start (interpreter and imports included)."""

from __future__ import annotations

import logging
import os
import signal
import threading


def process_age_s() -> float | None:
    """Seconds since this process started (interpreter start-up and imports included);
    None where /proc is not there."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def stop_on_signals(stop: threading.Event, log: logging.Logger) -> None:
    """Set `stop` on SIGTERM or SIGINT; the service's loop drains, flushes and exits 0."""
    def handle(signum, _frame):
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()
    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
