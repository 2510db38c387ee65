"""Dynamic batching: crops of several frames and cameras share one inference call."""

from __future__ import annotations

import time

import numpy as np
from kafka.future import Future

from detector.batching import FrameBatch
from detector.pipeline import FramePipeline, PendingFrame, PoisonFrame
from detector.tracking import Trackers
from moodstream.emotions import EMOTIONS
from moodstream.schemas import FrameHeaders
from tests.detector.conftest import clip_frames, jpeg

import pytest


def _pending(crops: int) -> PendingFrame:
    return PendingFrame(FrameHeaders("c", "s", 0, 0.0, 0.0), 10, 10, [], [],
                        np.zeros((crops, 48, 48, 1), np.uint8))


def test_frames_of_several_cameras_share_one_inference_call(yunet, emotion_model):
    pipeline = FramePipeline(yunet, emotion_model, Trackers(), max_batch=64)
    frames = clip_frames("single_face_smile.mp4", 8)[:6]
    pending = [pipeline.prepare(jpeg(f), FrameHeaders(f"cam{i % 3}", "s1", i, 0.0, i / 30,
                                                      run_id="r9"))
               for i, f in enumerate(frames)]
    calls = emotion_model.calls
    pipeline.classify(pending)
    assert emotion_model.calls == calls + 1
    messages = pipeline.messages(pending, 1.0)
    assert [m.camera_id for m in messages] == ["cam0", "cam1", "cam2"] * 2
    for message in messages:
        assert len(message.faces) == 1 and message.run_id == "r9" and not message.skipped
        face = message.faces[0]
        assert set(face.probs) == set(EMOTIONS) and abs(sum(face.probs.values()) - 1) < 1e-3
        assert face.smoothed is not None
        assert message.timing.detect_ms > 0 and message.timing.classify_ms == 1.0
    tracks = [m.faces[0].track_id for m in messages]
    assert tracks[:3] == tracks[3:] and len(set(tracks)) == 3  # one person per camera


def test_batched_probabilities_equal_one_by_one(yunet, emotion_model):
    pipeline = FramePipeline(yunet, emotion_model, Trackers())
    crops = np.stack([p.crops[0] for p in (pipeline.prepare(jpeg(f), FrameHeaders("c", "s", i, 0.0, 0.0))
                                          for i, f in enumerate(clip_frames("single_face_smile.mp4", 16)))])
    batched = emotion_model.predict(crops)
    single = np.concatenate([emotion_model.predict(c[None]) for c in crops])
    assert np.allclose(batched, single, atol=1e-4)


def test_max_batch_caps_each_call(yunet, emotion_model):
    pipeline = FramePipeline(yunet, emotion_model, Trackers(), max_batch=2)
    calls = emotion_model.calls
    pipeline.classify([_pending(3), _pending(0), _pending(2)])
    assert emotion_model.calls == calls + 3


def test_batch_is_due_when_full_or_when_the_wait_is_over():
    now = [100.0]
    batch = FrameBatch(max_batch=4, max_wait_ms=50, clock=lambda: now[0])
    assert batch.empty and not batch.due
    batch.add(_pending(1), ("frames", 0), 7)
    assert not batch.due and batch.wait_left_s() == pytest.approx(0.05)
    now[0] += 0.06
    assert batch.due
    full = FrameBatch(max_batch=4, max_wait_ms=50, clock=lambda: now[0])
    full.add(_pending(3), ("frames", 0), 1)
    full.settle(("frames", 1), 9)
    assert not full.full
    full.add(_pending(1), ("frames", 0), 2)
    assert full.full and full.due and full.offsets == {("frames", 0): 3, ("frames", 1): 10}
    assert full.starts == {("frames", 0): 1, ("frames", 1): 9}  # where a failed batch rewinds to


@pytest.mark.parametrize("payload, headers, reason", [
    (b"", FrameHeaders("c", "s", 0, 0.0, 0.0), "empty frame"),
    (b"\xff\xd8garbage", FrameHeaders("c", "s", 0, 0.0, 0.0), "corrupt frame"),
    (b"x" * 2048, FrameHeaders("c", "s", 0, 0.0, 0.0), "oversized frame"),
    (b"\xff\xd8", FrameHeaders("c", "s", 0, 0.0, 0.0, 9000, 9000), "oversized frame"),
])
def test_poison_frames_are_named(yunet, emotion_model, payload, headers, reason):
    pipeline = FramePipeline(yunet, emotion_model, Trackers(), max_jpeg_bytes=1024)
    with pytest.raises(PoisonFrame, match=reason):
        pipeline.prepare(payload, headers)


class Producer:
    """Fake producer whose sends all succeed (failing ones: tests/detector/test_delivery.py)."""

    def __init__(self, sent: list):
        self.sent = sent

    def send(self, topic, **kwargs):
        headers = dict(kwargs.get("headers") or [])
        self.sent.append((topic, headers.get("reason")) if "reason" in headers else topic)
        return Future().success(None)

    def flush(self, timeout=None):
        pass


def test_a_frame_that_breaks_the_detector_is_dead_lettered_not_fatal(yunet, emotion_model):
    from detector.service import DetectorService
    from detector.settings import DetectorSettings

    class Broken:
        name, geometry = "broken", yunet.geometry

        def detect(self, frame):
            raise RuntimeError("backend failure")

    class Record:
        topic, partition, offset, key = "t.frames", 0, 41, b"c"
        value = jpeg(clip_frames("single_face_smile.mp4", 4)[0])
        headers = FrameHeaders("c", "s", 0, time.time(), 0.0, run_id="r2").to_kafka()

    sent = []
    service = DetectorService(DetectorSettings.load(),
                              FramePipeline(Broken(), emotion_model, Trackers()))
    service.producer = Producer(sent)
    service.handle(Record())
    assert sent == [("moodstream.deadletter", b"processing error: RuntimeError: backend failure")]
    assert service.batch.offsets == {("t.frames", 0): 42} and service.deadletters.total == 1
    [skipped] = service.batch.entries  # the detections topic hears of it too
    assert (skipped.skipped, skipped.run_id, skipped.faces) == ("processing error", "r2", [])


def test_metrics_count_frames_faces_and_dead_letters(yunet, emotion_model):
    import urllib.request

    from detector.service import DetectorService
    from detector.settings import DetectorSettings
    from moodstream.embedded import free_port

    sent = []

    class Consumer:
        def assignment(self):
            return set()

        def commit(self, offsets):
            sent.append(("commit", sorted(offsets.values())[0].offset))

    class Record:
        topic, partition, offset, key = "t.frames", 0, 5, b"c"
        value = jpeg(clip_frames("single_face_smile.mp4", 4)[0])
        headers = FrameHeaders("c", "s", 0, time.time(), 0.0).to_kafka()

    class Empty(Record):
        offset, value = 6, b""

    service = DetectorService(DetectorSettings.load(), FramePipeline(yunet, emotion_model, Trackers()))
    service.producer = Producer(sent)
    service.loop.attach(Consumer())
    port = free_port()
    service.metrics.serve(port, "127.0.0.1")
    try:
        service.handle(Record())
        service.handle(Empty())
        assert service.flush()
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        service.metrics.close()
    # the dead letter at once; then, in input order, the frame's detection and the empty
    # frame's skipped detection; the commit only after all three were acknowledged
    assert sent == [("moodstream.deadletter", b"empty frame"), "moodstream.detections",
                    "moodstream.detections", ("commit", 7)]
    assert 'detector_frames_total{camera="c"} 1.0' in text
    assert 'detector_faces_total{camera="c"} 1.0' in text
    assert 'detector_deadletters_total{reason="empty frame"} 1.0' in text
    assert "detector_inference_calls_total 1.0" in text
    assert service.counters["skipped"] == 1 and service.counters["frames"] == 1
