"""Per-camera state that forgets cameras gone quiet, so a detector's memory stays bounded.

A detector sees cameras come and go (rebalances move partitions, cameras are removed from
the fleet): state kept per camera id forever grows with every id it has ever seen.
"""

from __future__ import annotations

import time
from typing import Callable, Generic, TypeVar

State = TypeVar("State")

IDLE_FORGET_S = 600.0  # a camera unseen for 10 minutes starts over (tracks end after 1.5 s)
SWEEP_EVERY_S = 60.0


class PerCamera(Generic[State]):
    """get(camera_id) -> that camera's state, created by `factory` on first sight."""

    def __init__(self, factory: Callable[[], State], idle_s: float = IDLE_FORGET_S,
                 clock: Callable[[], float] = time.monotonic):
        self._factory, self.idle_s, self._clock = factory, idle_s, clock
        self._states: dict[str, State] = {}
        self._last_use: dict[str, float] = {}
        self._next_sweep = clock() + SWEEP_EVERY_S

    def get(self, camera_id: str) -> State:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        state = self._states.get(camera_id)
        if state is None:
            state = self._states[camera_id] = self._factory()
        self._last_use[camera_id] = now
        return state

    def _sweep(self, now: float) -> None:
        for camera_id in [c for c, t in self._last_use.items() if now - t > self.idle_s]:
            del self._states[camera_id], self._last_use[camera_id]
        self._next_sweep = now + SWEEP_EVERY_S

    def __len__(self) -> int:
        return len(self._states)
