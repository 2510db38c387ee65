"""Optional alert webhook: POSTs alert JSON from a background thread.

The consumer loop never waits on the network: events go into a bounded queue, and when it
is full (the endpoint is down or slow) the event is dropped with a log line. A failed call
is logged, never fatal; the alert is in Redis either way.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request

from aggregator.alerts import AlertEvent
from moodstream.settings import redact, redact_webhook

log = logging.getLogger(__name__)

_STOP = object()


class WebhookNotifier:
    def __init__(self, url: str, timeout_s: float = 5.0, max_pending: int = 100):
        self.url, self.timeout_s = url, timeout_s
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.sent = self.failed = self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self.thread.start()

    def __call__(self, event: AlertEvent) -> None:
        try:
            self.queue.put_nowait({"event": f"alert_{event.kind}", "alert": event.record})
        except queue.Full:
            self.dropped += 1
            log.warning("alert webhook queue full; dropped alert_%s for camera %s",
                        event.kind, event.record.get("camera_id"))

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            self._post(item)

    def _post(self, payload: dict) -> None:
        request = urllib.request.Request(
            self.url, data=json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "moodstream-aggregator"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read(1024)
            self.sent += 1
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failed += 1
            log.warning("alert webhook %s failed: %s", redact_webhook(self.url),
                        redact(str(exc).replace(self.url, redact_webhook(self.url))))

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (bounded by timeout_s), then stop the thread."""
        try:
            self.queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            log.warning("alert webhook: %d event(s) not sent at shutdown", self.queue.qsize())
            return
        self.thread.join(timeout_s)
