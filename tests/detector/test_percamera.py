"""Per-camera detector state forgets cameras gone quiet, so memory stays bounded."""

from __future__ import annotations

from detector.percamera import IDLE_FORGET_S, SWEEP_EVERY_S, PerCamera
from detector.tracking import Trackers


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_idle_cameras_are_forgotten_and_busy_ones_kept():
    clock = Clock()
    states = PerCamera(dict, clock=clock)
    states.get("a")["n"] = 1
    states.get("b")["n"] = 2
    clock.now += IDLE_FORGET_S / 2
    states.get("b")  # b stays busy
    clock.now += IDLE_FORGET_S / 2 + SWEEP_EVERY_S + 1
    states.get("b")
    assert len(states) == 1
    assert states.get("b") == {"n": 2}  # kept, with its state
    assert states.get("a") == {}  # a came back: it starts over


def test_thousands_of_passing_cameras_do_not_accumulate():
    clock = Clock()
    states = PerCamera(dict, clock=clock)
    for i in range(5000):
        states.get(f"cam-{i}")
        clock.now += 1.0  # one new camera a second, each seen once
    assert len(states) <= IDLE_FORGET_S + SWEEP_EVERY_S + 1


def test_trackers_share_their_ids_across_cameras():
    trackers = Trackers()
    assert trackers.for_camera("a").ids is trackers.for_camera("b").ids
    assert trackers.for_camera("a") is trackers.for_camera("a")
