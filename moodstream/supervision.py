"""Restart rules and health records for what the launcher runs (workers, embedded servers).

A process that exits unexpectedly is restarted after
``backoff_initial_s * 2 ** (crashes in the last crash_window_s - 1)`` seconds, capped at
``backoff_max_s``. Its ``max_crashes``-th crash within ``crash_window_s`` ends the run
(the caller stops everything and prints one line): a crash loop is never kept going.
Exit code 2 is a service's "the configuration is wrong", which a restart cannot fix, so it
ends the run at once. Health (name, pid, restarts, last exit, state) goes to the Redis
hash ``RedisKeys.workers`` with a short TTL, so a dead launcher's records disappear.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections import deque

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from moodstream.clients import REDIS_ERRORS, redis_from_url
from moodstream.redis_keys import RedisKeys
from moodstream.settings import CommonSettings

log = logging.getLogger("moodstream")

EXIT_CONFIG = 2  # every service's exit code for a configuration / input mistake
HEALTH_TTL_S = 30  # a launcher refreshes each second; a dead one's records expire
HEALTH_EVERY_S = 1.0


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"MOODSTREAM_LAUNCHER_{name.upper()}")


class LauncherSettings(CommonSettings):
    """`moodstream demo` / `analyze`: the common settings plus the restart policy."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    max_crashes: int = Field(5, ge=1, validation_alias=_env("max_crashes"))
    crash_window_s: float = Field(60.0, gt=0, validation_alias=_env("crash_window_s"))
    backoff_initial_s: float = Field(1.0, gt=0, validation_alias=_env("backoff_initial_s"))
    backoff_max_s: float = Field(30.0, gt=0, validation_alias=_env("backoff_max_s"))


class CrashHistory:
    """Recent crashes of one process: the backoff before its restart and when to give up."""

    def __init__(self, settings: LauncherSettings, clock=time.monotonic):
        self.settings, self.clock = settings, clock
        self.times: deque[float] = deque()
        self.restarts = 0

    def record(self) -> int:
        """Note a crash now; returns the crashes within the window, this one included."""
        now = self.clock()
        self.times.append(now)
        while self.times and self.times[0] < now - self.settings.crash_window_s:
            self.times.popleft()
        return len(self.times)

    @property
    def exhausted(self) -> bool:
        return len(self.times) >= self.settings.max_crashes

    def delay(self) -> float:
        s = self.settings
        return min(s.backoff_max_s, s.backoff_initial_s * 2 ** max(0, len(self.times) - 1))

    def give_up_message(self, name: str, how: str) -> str:
        return (f"{name} crashed {len(self.times)} times within "
                f"{self.settings.crash_window_s:.0f} s ({how}); giving up")


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def health_record(name: str, pid: int | None, restarts: int, last_exit: int | None,
                  state: str, kind: str = "worker") -> dict:
    return {"name": name, "kind": kind, "pid": pid, "restarts": restarts,
            "last_exit": last_exit, "state": state, "updated_at": round(time.time(), 3)}


class HealthBoard:
    """Writes health records to Redis; never blocks or fails the supervision loop."""

    def __init__(self, redis_url: str, prefix: str):
        self.key = RedisKeys(prefix).workers
        # Short timeouts and no retries: supervision must go on while Redis restarts.
        try:
            self.client = redis_from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        except (*REDIS_ERRORS, ValueError) as exc:
            log.warning("worker health will not be recorded in Redis (%s)", type(exc).__name__)
            self.client = None
        self._last_write = 0.0
        self._last_records: list[dict] | None = None
        self._failing = False

    def publish(self, records: list[dict], force: bool = False) -> None:
        if self.client is None:
            return
        now = time.monotonic()
        changed = [_stable(r) for r in records] != [_stable(r) for r in self._last_records or []]
        if not (force or changed or now - self._last_write >= HEALTH_EVERY_S):
            return
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.key)
            pipe.hset(self.key, mapping={r["name"]: json.dumps(r) for r in records})
            pipe.expire(self.key, HEALTH_TTL_S)
            pipe.execute()
        except REDIS_ERRORS as exc:
            if not self._failing:
                log.warning("cannot record worker health in Redis (%s); will retry",
                            type(exc).__name__)
            self._failing = True
            return
        self._failing, self._last_write, self._last_records = False, now, records

    def clear(self) -> None:
        if self.client is None:
            return
        try:
            self.client.delete(self.key)
        except REDIS_ERRORS:
            pass  # the TTL removes it anyway
        self.client.close()


def _stable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "updated_at"}
