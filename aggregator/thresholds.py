"""Per-camera alert rules from Redis, picked up while the aggregator runs.

An admin edits a camera's thresholds on the dashboard (stored in the alert_thresholds hash,
moodstream.redis_keys). The alert monitor asks rule_for(camera) on every frame; that is a
dict lookup: the hash is re-read (one HGETALL) at most every refresh_s, so an edit takes
effect within refresh_s without a restart and with no Redis round trip per message. A
camera without a valid entry keeps the default rule (the aggregator's settings). A Redis
error propagates like any other in the consumer loop (the batch stays uncommitted).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import redis

from aggregator.alerts import AlertRule
from moodstream.alert_thresholds import CameraThresholds, parse_thresholds
from moodstream.redis_keys import RedisKeys

log = logging.getLogger(__name__)

REFRESH_S = 5.0


class ThresholdRules:
    """rule_for(camera_id) -> AlertRule: the default rule with the camera's stored thresholds."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, default: AlertRule,
                 refresh_s: float = REFRESH_S, clock: Callable[[], float] = time.monotonic):
        self.r, self.keys, self.default = client, keys, default
        self.refresh_s, self.clock = refresh_s, clock
        self._rules: dict[str, AlertRule] = {}
        self._stored: dict[str, str] = {}  # raw entries of the last read, to log changes once
        self._read_at: float | None = None

    def rule_for(self, camera_id: str) -> AlertRule:
        self._refresh()
        return self._rules.get(camera_id, self.default)

    def _refresh(self) -> None:
        now = self.clock()
        if self._read_at is not None and now - self._read_at < self.refresh_s:
            return
        raw = self.r.hgetall(self.keys.alert_thresholds)
        self._read_at = now
        if raw == self._stored:
            return
        self._rules = {}
        for camera_id, entry in raw.items():
            thresholds = parse_thresholds(entry)
            if thresholds is None:
                self._log_change(camera_id, entry, logging.WARNING,
                                 "ignored an invalid entry (defaults apply)")
                continue
            self._rules[camera_id] = self._rule(thresholds)
            self._log_change(camera_id, entry, logging.INFO, f"now {thresholds}")
        for camera_id in self._stored.keys() - raw.keys():
            log.info("alert thresholds of camera %.60r removed: defaults apply", camera_id)
        self._stored = raw

    def _rule(self, thresholds: CameraThresholds) -> AlertRule:
        return dataclasses.replace(self.default, threshold=thresholds.threshold,
                                   resolve_threshold=thresholds.resolve_threshold,
                                   min_duration_s=thresholds.min_duration_s)

    def _log_change(self, camera_id: str, entry: str, level: int, what: str) -> None:
        if self._stored.get(camera_id) != entry:  # once per change, not once per read
            log.log(level, "alert thresholds of camera %.60r: %s", camera_id, what)
