"""One dead-letter sender for every consumer: evidence about a bad record, never its payload.

A dead letter has an empty value: the payload of a frame is pixels, which must never leave
the detector, and a decompression bomb or an oversized record copied to the dead-letter
topic would only move the problem there. What it carries instead, in headers:

    reason            why (bounded to REASON_MAX_BYTES of UTF-8)
    reason_kind       the reason up to its first ':' (a short, fixed vocabulary: metrics label)
    source_topic, source_partition, source_offset   where the original still is, while retained
    original_bytes    the payload's size
    original_sha256   the payload's SHA-256 (hex), to match it against other copies

plus the original record's own headers (its identity: camera, session, seq), bounded in
number and size because they are untrusted input too. The key is kept (truncated to
KEY_MAX_BYTES) so a dead letter lands in the same partition as its camera's others.

send() never raises: a producer that refuses the record synchronously (buffer full,
metadata timeout, closed) yields an already-failed future, so a caller has one place to
check delivery: the future, after flush, before committing the input offset.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter

from kafka.future import Future

log = logging.getLogger(__name__)

REASON_MAX_BYTES = 300
KIND_MAX_CHARS = 40
KEY_MAX_BYTES = 256
COPIED_HEADERS_MAX = 16
COPIED_HEADER_KEY_MAX_CHARS = 64
COPIED_HEADER_VALUE_MAX_BYTES = 256
OWN_HEADERS = ("reason", "reason_kind", "source_topic", "source_partition", "source_offset",
               "original_bytes", "original_sha256")
# Characters a reason kind may hold: a quoted value or a number in a reason ends the kind, so
# an attacker-chosen id ("invalid camera_id 'x'") never becomes a metric label.
_KIND_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ _()-")


def reason_kind(reason: str) -> str:
    """'corrupt frame: no SOF marker' -> 'corrupt frame'; bounded, never empty."""
    head = reason.split(":", 1)[0]
    cut = next((i for i, ch in enumerate(head) if ch not in _KIND_CHARS), len(head))
    return head[:min(cut, KIND_MAX_CHARS)].strip() or "unknown"


def bounded_utf8(text: str, limit: int) -> bytes:
    """text as UTF-8, cut to at most limit bytes on a character boundary."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw
    return raw[:limit - 3].decode("utf-8", "ignore").encode() + b"..."


def send_or_fail(producer, topic: str, **record) -> Future:
    """producer.send(), with a synchronous refusal turned into a failed future."""
    try:
        return producer.send(topic, **record)
    except Exception as exc:  # noqa: BLE001 - any refusal is a failed delivery, checked later
        return Future().failure(exc)


def _copied_headers(headers) -> list[tuple[str, bytes]]:
    """The original record's headers, minus ours, bounded: they are untrusted input."""
    copied = []
    for item in headers or []:
        if len(copied) >= COPIED_HEADERS_MAX:
            break
        if not (isinstance(item, tuple) and len(item) == 2):
            continue
        key, value = item
        if (not isinstance(key, str) or key in OWN_HEADERS
                or not 0 < len(key) <= COPIED_HEADER_KEY_MAX_CHARS):
            continue
        if isinstance(value, (bytes, bytearray)):
            copied.append((key, bytes(value[:COPIED_HEADER_VALUE_MAX_BYTES])))
    return copied


def _payload(record) -> bytes:
    value = getattr(record, "value", None)
    return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else b""


class DeadLetterSender:
    """Sends bad records to one dead-letter topic and counts them by reason kind.

    `producer` may be swapped for a new one (a service replacing a failed producer);
    the counts stay. Counts are of sends: a redelivered bad record counts again.
    """

    def __init__(self, producer, topic: str):
        self.producer, self.topic = producer, topic
        self.counts: Counter = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def headers(self, record, reason: str) -> list[tuple[str, bytes]]:
        payload = _payload(record)
        own = [("reason", bounded_utf8(reason, REASON_MAX_BYTES)),
               ("reason_kind", reason_kind(reason).encode()),
               ("source_topic", str(getattr(record, "topic", "")).encode()),
               ("source_partition", str(getattr(record, "partition", "")).encode()),
               ("source_offset", str(getattr(record, "offset", "")).encode()),
               ("original_bytes", str(len(payload)).encode()),
               ("original_sha256", hashlib.sha256(payload).hexdigest().encode())]
        return _copied_headers(getattr(record, "headers", None)) + own

    def send(self, record, reason: str) -> Future:
        """Dead-letter `record` (a Kafka ConsumerRecord or alike) because of `reason`."""
        self.counts[reason_kind(reason)] += 1
        key = getattr(record, "key", None)
        key = bytes(key[:KEY_MAX_BYTES]) if isinstance(key, (bytes, bytearray)) else None
        return send_or_fail(self.producer, self.topic, key=key, value=b"",
                            headers=self.headers(record, reason))
