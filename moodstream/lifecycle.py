"""Shutdown, the same in every service: SIGTERM is handled exactly like SIGINT."""

from __future__ import annotations

import logging
import signal
import threading


def stop_on_signals(stop: threading.Event, log: logging.Logger) -> None:
    """Set `stop` on SIGTERM or SIGINT; the service's loop drains, flushes and exits 0."""
    def handle(signum, _frame):
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()
    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
