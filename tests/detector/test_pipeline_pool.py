"""Decode and detection on a thread pool (detector/overlap.py): the same detections and
tracks, and the same frame order per camera, as the sequential path.

Probabilities are compared within PROB_TOLERANCE: a pooled batch counts a frame's crops
only once its worker is done, so it may close a frame later than the sequential one and
run the model at another (zero-padded) batch size; each message rounds to 5 decimals.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from kafka import KafkaProducer

from detector.batching import FrameBatch
from detector.faces import CropGeometry, FaceBox
from detector.pipeline import FramePipeline, PoisonFrame
from detector.roi import ExclusionMask
from detector.scaling import DetectionScaler
from detector.settings import DetectorSettings
from detector.tracking import Trackers
from moodstream.clients import ensure_topics
from moodstream.schemas import DetectionMessage, FrameHeaders
from moodstream.settings import CommonSettings
from moodstream.topics import Topics
from tests.conftest import REPO
from tests.detector.conftest import clip_frames, jpeg

CARD = REPO / "models" / "emotion.card.json"  # what `python -m detector` serves by default
PROB_TOLERANCE = 2e-5  # one unit of the messages' 5-decimal rounding, plus float noise
T0 = 1_700_000_000.0  # capture times: the frame headers' bounds refuse times before 2000


@pytest.fixture(scope="module")
def card_model():
    from detector.classifier import EmotionModel
    return EmotionModel(CARD)


def pipeline_for(detector, model, threads: int, masks=None, trackers=None) -> FramePipeline:
    """The service's pipeline as `python -m detector` builds it by default."""
    return FramePipeline(detector, model, trackers or Trackers(), masks, max_batch=64,
                         scaler=DetectionScaler(640, 8), threads=threads)


def run(pipeline: FramePipeline, items) -> list[DetectionMessage]:
    """The service's loop without Kafka: add each frame, classify and build the messages of
    a batch once it is full, and of the rest at the end."""
    messages, batch = [], FrameBatch(pipeline.max_batch, 1e9)
    try:
        for data, headers in items:
            batch.add(pipeline.prepare(data, headers))
            if batch.full:
                messages += pipeline.messages(batch.frames, pipeline.classify(batch.frames))
                batch = FrameBatch(pipeline.max_batch, 1e9)
        messages += pipeline.messages(batch.frames, pipeline.classify(batch.frames))
    finally:
        pipeline.close()
    return messages


def canonical(messages: list[DetectionMessage]) -> list[tuple]:
    """Each message's camera, seq, boxes, scores and tracks, excluded faces; track ids
    renumbered per camera by first appearance (a pipeline draws random id prefixes)."""
    numbers: dict = {}
    out = []
    for m in messages:
        faces = tuple((f.box, f.score, numbers.setdefault((m.camera_id, f.track_id), len(numbers)))
                      for f in m.faces)
        out.append((m.camera_id, m.seq, m.frame_w, m.frame_h, faces, m.excluded_faces))
    return out


def assert_same_detections(pooled: list[DetectionMessage], sequential: list[DetectionMessage]):
    assert canonical(pooled) == canonical(sequential)
    for a, b in zip(pooled, sequential):
        for fa, fb in zip(a.faces, b.faces):
            for field in ("probs", "smoothed"):
                pa, pb = getattr(fa, field), getattr(fb, field)
                assert max(abs(pa[e] - pb[e]) for e in pb) <= PROB_TOLERANCE, (a.seq, field)


def clip_items(name: str, camera: str, step: int = 1, fps: float = 25.0) -> list[tuple]:
    return [(jpeg(f), FrameHeaders(camera, f"{camera}-s", i, T0 + i / fps, i / fps))
            for i, f in enumerate(clip_frames(name, step))]


@pytest.mark.slow
@pytest.mark.parametrize("clip, step", [("single_face_smile.mp4", 1), ("crowd_walk_1080p.mp4", 1),
                                        ("no_face.mp4", 3)])
def test_pooled_detections_equal_the_sequential_path_on_each_shared_clip(
        yunet, card_model, clip, step):
    items = clip_items(clip, "cam", step)
    sequential = run(pipeline_for(yunet, card_model, 1), items)
    pooled_pipeline = pipeline_for(yunet, card_model, 2)
    pooled = run(pooled_pipeline, items)
    assert len(pooled) == len(items)  # no frame lost
    assert [m.seq for m in pooled] == list(range(len(items)))  # nor reordered
    assert_same_detections(pooled, sequential)
    faces = sum(len(m.faces) for m in sequential)
    assert faces > 0 or clip == "no_face.mp4"
    if clip == "crowd_walk_1080p.mp4":  # small faces keep the full width: detected early
        assert pooled_pipeline.pool.early["kept"] > 0.8 * len(items)


@pytest.mark.slow
def test_interleaved_cameras_with_a_mask_keep_their_own_order_and_tracks(yunet, card_model):
    smile = clip_items("single_face_smile.mp4", "door", 2)
    crowd = clip_items("crowd_walk_1080p.mp4", "street", 3)
    items = [item for pair in zip(smile, crowd) for item in pair]
    per_camera = len(items) // 2
    masks = {"street": ExclusionMask([[(0, 0), (0.5, 0), (0.5, 1), (0, 1)]])}
    sequential = run(pipeline_for(yunet, card_model, 1, masks), items)
    pooled = run(pipeline_for(yunet, card_model, 2, masks), items)
    assert_same_detections(pooled, sequential)
    assert sum(m.excluded_faces for m in pooled) > 0
    for camera in ("door", "street"):
        assert [m.seq for m in pooled if m.camera_id == camera] == list(range(per_camera))


class JitteryDetector:
    """A fake detector that takes a random time per call, so pooled jobs finish out of
    order; its one face depends on the frame and the width asked for, so a frame detected
    at another width than the sequential path's would show."""

    name, geometry = "jittery", CropGeometry(0.9, 0.9)

    def __init__(self, seed: int):
        self.random, self.lock = random.Random(seed), threading.Lock()

    def detect(self, frame: np.ndarray, width: int | None = None) -> list[FaceBox]:
        with self.lock:
            delay = self.random.uniform(0, 0.004)
        time.sleep(delay)
        side = 40 + int(frame[0, 0, 0]) % 60  # frames are painted with their own grey level
        return [FaceBox(10, 10, side, side, (width or 0) / 1000.0)]


class RecordingTrackers(Trackers):
    """Trackers that note each camera's frames in the order they are assigned tracks."""

    def __init__(self):
        super().__init__()
        self.seen: dict[str, list[float]] = {}

    def for_camera(self, camera_id: str):
        tracker = super().for_camera(camera_id)
        if camera_id not in self.seen:  # the same tracker comes back for every frame
            seen, assign = self.seen.setdefault(camera_id, []), tracker.assign

            def recording(session_id, ts, boxes):
                seen.append(ts)
                return assign(session_id, ts, boxes)

            tracker.assign = recording
        return tracker


def painted_items(cameras: int, frames: int) -> list[tuple]:
    items = []
    for i in range(frames):
        for c in range(cameras):
            grey = np.full((120, 320, 3), (i * 7 + c * 13) % 256, np.uint8)
            items.append((jpeg(grey), FrameHeaders(f"cam{c}", "s", i, T0 + i / 5, i / 5)))
    return items


def test_frames_of_each_camera_reach_the_tracker_in_order_under_the_pool(card_model):
    items = painted_items(cameras=3, frames=40)
    trackers = RecordingTrackers()
    pooled = run(pipeline_for(JitteryDetector(1), card_model, 3, trackers=trackers), items)
    sequential = run(pipeline_for(JitteryDetector(2), card_model, 1), items)
    for c in range(3):
        assert trackers.seen[f"cam{c}"] == [T0 + i / 5 for i in range(40)]
    assert canonical(pooled) == canonical(sequential)  # same widths, so same scores
    assert len({f.score for m in pooled for f in m.faces}) > 1  # the scaler did vary them


def undecodable() -> bytes:
    """A JPEG whose header is fine (it passes the size checks) but has no image data."""
    data = jpeg(np.full((48, 64, 3), 128, np.uint8))
    return data[:data.index(b"\xff\xda")] + b"\xff\xd9"


def test_a_frame_that_fails_to_decode_in_the_pool_fails_alone(yunet, card_model):
    good_items = clip_items("single_face_smile.mp4", "cam", 6)[:6]
    broken = (undecodable(), FrameHeaders("cam", "cam-s", 99, T0 + 0.05, 0.05))
    items = good_items[:3] + [broken] + good_items[3:]
    with pytest.raises(PoisonFrame, match="corrupt frame: not a decodable JPEG"):
        pipeline_for(yunet, card_model, 1).prepare(*broken)
    sequential = run(pipeline_for(yunet, card_model, 1), good_items)

    pipeline = pipeline_for(yunet, card_model, 2)
    frames = [pipeline.prepare(data, headers) for data, headers in items]
    batch = FrameBatch(64, 1e9)
    for frame in frames:
        batch.add(frame)
    pipeline.classify(frames)
    assert batch.crops == sum(len(m.faces) for m in sequential) > 0  # none for the broken one
    with pytest.raises(PoisonFrame, match="corrupt frame: not a decodable JPEG"):
        pipeline.message(frames[3], 0.0)
    good = [pipeline.message(f, 0.0) for f in frames[:3] + frames[4:]]
    pipeline.close()
    assert_same_detections(good, sequential)  # its camera's other frames are untouched


def test_sizes_are_still_checked_before_anything_reaches_the_pool(yunet, card_model):
    pipeline = FramePipeline(yunet, card_model, Trackers(), max_jpeg_bytes=1024, threads=2)
    try:
        with pytest.raises(PoisonFrame, match="oversized frame"):
            pipeline.prepare(b"\xff\xd8" + b"x" * 2048, FrameHeaders("c", "s", 0, 0.0, 0.0))
        with pytest.raises(PoisonFrame, match="empty frame"):
            pipeline.prepare(b"", FrameHeaders("c", "s", 0, 0.0, 0.0))
    finally:
        pipeline.close()


def test_decode_threads_setting(monkeypatch):
    assert DetectorSettings.load().decode_threads == 2
    monkeypatch.setenv("MOODSTREAM_DETECTOR_DECODE_THREADS", "0")
    assert DetectorSettings.load().decode_threads == 0
    monkeypatch.setenv("MOODSTREAM_DETECTOR_DECODE_THREADS", "-1")
    with pytest.raises(Exception, match="DECODE_THREADS"):
        DetectorSettings.load()


@pytest.mark.slow
@pytest.mark.integration
def test_the_detector_process_with_a_pool_sends_the_sequential_detections(
        stack_env, yunet, card_model, tmp_path):
    """Real broker, real detector process (2 decode threads): two cameras' frames come
    back once each, in order per camera, equal to the in-process sequential path's, and
    the detector handed frames on while others were still being detected."""
    from tests.detector.test_service import read_topic, stop
    topics = Topics(stack_env["MOODSTREAM_TOPIC_PREFIX"])
    settings = CommonSettings.load(kafka_bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"],
                                   topic_prefix=stack_env["MOODSTREAM_TOPIC_PREFIX"])
    ensure_topics(settings)
    items = [item for pair in zip(clip_items("single_face_smile.mp4", "door", 2),
                                  clip_items("crowd_walk_1080p.mp4", "street", 3))
             for item in pair]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                             max_request_size=8 << 20)
    for data, headers in items:
        producer.send(topics.frames, key=headers.camera_id.encode(), value=data,
                      headers=headers.to_kafka())
    producer.flush()
    producer.close()
    log = tmp_path / "detector.log"
    proc = subprocess.Popen([sys.executable, "-m", "detector", "--model", str(CARD),
                             "--decode-threads", "2", "--assign", "all"], cwd=REPO,
                            env=stack_env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        records = read_topic(stack_env, topics.detections, len(items), procs=[proc])
    finally:
        code, _ = stop(proc)
    assert code == 0, log.read_text()[-2000:]
    # Frames went out while later ones were still in the pool: no stall at each hand-off.
    carried = re.findall(r"handoffs_with_frames_in_flight=(\d+)", log.read_text())
    assert carried and int(carried[-1]) > 0, log.read_text()[-2000:]
    received = [DetectionMessage.from_bytes(r.value) for r in records]
    sequential = run(pipeline_for(yunet, card_model, 1), items)
    for camera in ("door", "street"):
        ours = [m for m in received if m.camera_id == camera]  # one partition: in send order
        expected = [m for m in sequential if m.camera_id == camera]
        assert [m.seq for m in ours] == [m.seq for m in expected]
        assert_same_detections(ours, expected)


def test_still_images_between_video_frames_come_out_as_in_the_sequential_path(yunet, card_model):
    """A still frame takes no width from the camera's last frame and gets tracks of its own,
    pooled or not; the video frames around it keep their order and tracks."""
    items = clip_items("single_face_smile.mp4", "cam", 6)[:8]
    for i in (2, 5):
        data, h = items[i]
        items[i] = (data, FrameHeaders(h.camera_id, h.session_id, h.seq, h.capture_ts, h.offset_s,
                                       still=True))
    sequential = run(pipeline_for(yunet, card_model, 1), items)
    pooled = run(pipeline_for(yunet, card_model, 2), items)
    assert_same_detections(pooled, sequential)
    tracks = [m.faces[0].track_id for m in pooled if m.faces]
    assert len(set(tracks)) >= 3  # the stills' faces are not the video's person
