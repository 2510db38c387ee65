"""Frames handed on as the pool finishes them (no stall at each flush), at-least-once kept:
unit tests with a gated face detector, so which frame is done when is decided by the test.

The same service against a real broker and a real detector process:
tests/detector/test_pipeline_pool.py (test_the_detector_process_with_a_pool_...).
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from kafka import TopicPartition

from detector.batching import FrameBatch
from detector.faces import CropGeometry, FaceBox
from detector.pipeline import FramePipeline, PendingFrame
from detector.service import DetectorService
from detector.settings import DetectorSettings
from detector.tracking import Trackers
from moodstream.consumer import Backoff
from moodstream.schemas import DetectionMessage, FrameHeaders
from tests.detector.conftest import jpeg
from tests.detector.test_delivery import Consumer, Producer

FRAMES = "t.frames"
T0 = 1_700_000_000.0


class GatedDetector:
    """Finds one face in every frame, but only once the test opens the frame's gate
    (frames are painted with their own grey level, which names the gate)."""

    name, geometry = "gated", CropGeometry(0.9, 0.9)
    GREYS = (40, 120, 200)

    def __init__(self):
        self.gates = {grey: threading.Event() for grey in self.GREYS}

    def open(self, *greys: int) -> None:
        for grey in greys:
            self.gates[grey].set()

    def detect(self, frame: np.ndarray, width: int | None = None) -> list[FaceBox]:
        grey = min(self.GREYS, key=lambda g: abs(g - int(frame[0, 0, 0])))
        assert self.gates[grey].wait(10), "gate never opened"
        return [FaceBox(20, 20, 60, 60, 0.9)]


def record(grey: int, offset: int, partition: int = 0, camera: str | None = None):
    camera = camera or f"cam{grey}"
    headers = FrameHeaders(camera, "s", offset, T0 + offset, float(offset), run_id="r1")
    return SimpleNamespace(topic=FRAMES, partition=partition, offset=offset, key=camera.encode(),
                           value=jpeg(np.full((120, 160, 3), grey, np.uint8)),
                           headers=headers.to_kafka(), timestamp=None)


def gated_service(model, max_wait_ms: float) -> tuple[DetectorService, GatedDetector]:
    detector = GatedDetector()
    settings = DetectorSettings.load(max_wait_ms=max_wait_ms)
    pipeline = FramePipeline(detector, model, Trackers(), max_batch=64, threads=2)
    service = DetectorService(settings, pipeline)
    service.loop.attach(Consumer())
    service.producer = Producer()
    service.new_producer, service.loop.backoff = Producer, Backoff(0.0, 0.0)
    return service, detector


@pytest.fixture
def gated(emotion_model):
    service, detector = gated_service(emotion_model, max_wait_ms=0)  # whatever is ready
    yield service, detector
    detector.open(*GatedDetector.GREYS)
    service.pipeline.close()


def test_a_ready_head_waits_for_the_window_only_while_frames_are_in_the_pool(emotion_model):
    """Live frames trickle in: once the pool is idle, waiting for more crops would only
    add latency, so the head goes out at the end of the poll; while another frame is
    being detected the batching window holds it."""
    service, detector = gated_service(emotion_model, max_wait_ms=10_000)
    service._delivered_once = True  # past the start-up rule (first detections at once)
    try:
        detector.open(40)
        service.handle(record(40, 5))
        service.handle(record(120, 6))  # in the pool
        wait_done(service, 1)
        idle(service)
        assert service.producer.detections() == []  # the window holds offset 5
        detector.open(120)
        wait_done(service, 2)
        idle(service)  # nothing in the pool: both go out at once
        assert [m.seq for m in service.producer.detections()] == [5, 6]
        assert service.consumer.commits == [{(FRAMES, 0): 7}]
    finally:
        detector.open(*GatedDetector.GREYS)
        service.pipeline.close()


def wait_done(service: DetectorService, count: int) -> None:
    """Until `count` frames of the batch are done (the pool works on its own threads)."""
    deadline = time.monotonic() + 10
    while sum(f.ready for f in service.batch.frames) < count:
        assert time.monotonic() < deadline, "the pool never finished the frame"
        time.sleep(0.005)


def idle(service: DetectorService) -> None:
    """One empty poll: the loop's on_idle hand-off, confirm and commit."""
    service.loop.take({})


def test_a_ready_frame_goes_out_while_the_one_behind_it_is_still_detected(gated):
    service, detector = gated
    detector.open(40)
    service.handle(record(40, 5))
    service.handle(record(120, 6))
    wait_done(service, 1)
    idle(service)
    assert [m.seq for m in service.producer.detections()] == [5]
    assert service.consumer.commits == [{(FRAMES, 0): 6}]  # not 7: offset 6 is in the pool
    assert service.counters["handoffs_with_frames_in_flight"] == 1
    detector.open(120)
    wait_done(service, 1)
    idle(service)
    assert [m.seq for m in service.producer.detections()] == [5, 6]
    assert service.consumer.commits[-1] == {(FRAMES, 0): 7}


def test_a_frame_done_early_waits_for_the_earlier_ones(gated):
    """Detections (and commits) keep input order: a later frame finished first is not
    handed on before the frames ahead of it."""
    service, detector = gated
    service.handle(record(40, 5))
    service.handle(record(120, 6))
    detector.open(120)
    deadline = time.monotonic() + 10
    while not service.batch.frames[1].ready:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    idle(service)
    assert service.producer.detections() == [] and service.consumer.commits == []
    detector.open(40)
    wait_done(service, 2)
    idle(service)
    assert [m.seq for m in service.producer.detections()] == [5, 6]
    assert service.consumer.commits == [{(FRAMES, 0): 7}]


def test_after_a_failed_hand_off_the_frames_carried_behind_it_are_read_again(gated):
    service, detector = gated
    service.producer = Producer(failing={"moodstream.detections"})
    service.handle(record(40, 5))
    service.handle(record(120, 6))  # same partition, still in the pool: carried over
    service.handle(record(200, 3, partition=1))
    detector.open(40)
    wait_done(service, 1)
    idle(service)  # offset 5 fails: partition 0 rewinds to 5, so 6 must go with the re-read
    assert service.consumer.seeks == {(FRAMES, 0): 5} and service.consumer.commits == []
    assert [(p, len(f)) for p, f in _frames_by_partition(service.batch).items()] == [(1, 1)]
    detector.open(120, 200)
    wait_done(service, 1)
    idle(service)  # the fresh producer delivers partition 1's frame alone
    assert service.consumer.commits == [{(FRAMES, 1): 4}]
    assert [m.seq for m in service.producer.detections()] == [3]


def test_drain_hands_on_the_frames_still_in_the_pool_too(gated):
    """On revoke and at stop nothing is carried: drain waits for the pool."""
    service, detector = gated
    service.handle(record(40, 5))
    service.handle(record(120, 6))
    threading.Timer(0.05, detector.open, args=GatedDetector.GREYS).start()
    assert service.flush() is True
    assert [m.seq for m in service.producer.detections()] == [5, 6]
    assert service.consumer.commits == [{(FRAMES, 0): 7}] and service.batch.empty


def _frames_by_partition(batch: FrameBatch) -> dict:
    out: dict = {}
    for slot in batch._slots:
        out.setdefault(slot.partition[1], []).append(slot.offset)
    return out


def pending(seq: int, done: bool) -> PendingFrame:
    headers = FrameHeaders("c", "s", seq, T0 + seq, float(seq))
    event = threading.Event()
    if done:
        event.set()
    return PendingFrame(headers, 10, 10, [], [], np.zeros((seq % 3, 48, 48, 1), np.uint8),
                        done=event)


def test_take_ready_splits_off_the_ready_head_with_its_offsets_and_dead_letters():
    clock = iter(range(100)).__next__
    batch = FrameBatch(64, 10_000, clock=lambda: clock())
    p0, p1 = (FRAMES, 0), (FRAMES, 1)
    skipped = DetectionMessage(camera_id="c", session_id="s", seq=9, capture_ts=T0,
                               offset_s=0.0, skipped="empty frame")
    batch.add(pending(1, True), p0, 10)
    batch.settle(p1, 4, sent="dead-letter-future", skipped=skipped)
    batch.add(pending(2, True), p1, 5)
    late = pending(3, False)
    batch.add(late, p0, 11)
    batch.add(pending(4, True), p1, 6)  # done, but behind a frame that is not
    assert batch.ready_head() == (3, 1 + 2) and batch.in_flight
    head = batch.take_ready()
    assert [getattr(e, "headers", e).seq for e in head.entries] == [1, 9, 2]
    assert (head.offsets, head.starts) == ({p0: 11, p1: 6}, {p0: 10, p1: 4})
    assert head.sends == ["dead-letter-future"] and batch.sends == []
    assert (batch.offsets, batch.starts) == ({p0: 12, p1: 7}, {p0: 11, p1: 6})
    assert batch.take_ready() is None  # its head is still in the pool
    late.done.set()
    assert batch.drop({p0}) == 1 and [f.headers.seq for f in batch.frames] == [4]
    assert (batch.offsets, batch.starts) == ({p1: 7}, {p1: 6})
