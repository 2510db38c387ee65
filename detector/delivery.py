"""Delivery checks for commit-after-ack: which sends the broker has not acknowledged, and
how long to wait before the next try (see detector/service.py for the design)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class NotAcknowledged(Exception):
    """A send still without an answer when the flush gave up waiting."""


def unacknowledged(producer, futures: list, timeout_s: float) -> list[BaseException]:
    """Flush `producer`, then the error of every future that did not succeed (empty = all
    acknowledged). A future still pending after the flush counts as failed."""
    if futures:
        try:
            producer.flush(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - KafkaTimeoutError & co: the futures tell
            log.warning("producer flush gave up: %s: %s", type(exc).__name__, exc)
    return [(future.exception if future.failed() else NotAcknowledged("no answer from the broker"))
            for future in futures if not future.succeeded()]


class Backoff:
    """Capped exponential wait between retries of an undelivered batch; reset on success."""

    def __init__(self, first_s: float = 0.5, max_s: float = 5.0):
        self.first_s, self.max_s = first_s, max_s
        self.failures = 0

    def next_s(self) -> float:
        wait = min(self.max_s, self.first_s * 2 ** min(self.failures, 16))
        self.failures += 1
        return wait

    def reset(self) -> None:
        self.failures = 0
