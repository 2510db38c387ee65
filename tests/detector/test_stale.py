"""Stale live frames: a detector behind by more than max_lag_s on a LIVE camera does not
analyse the late frames; each becomes a "stale" skipped detection (counted in a metric and,
by the aggregator, in the session meta). Files never skip."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
import redis
from kafka import KafkaProducer

from detector.service import DetectorService
from detector.settings import DetectorSettings
from moodstream.embedded import free_port
from moodstream.redis_keys import RedisKeys
from moodstream.schemas import SKIPPED_STALE, DetectionMessage, FrameHeaders, MessageError
from moodstream.settings import SettingsError
from moodstream.topics import Topics
from tests.conftest import REPO
from tests.detector.conftest import clip_frames, jpeg
from tests.detector.test_service import publish_frames, read_topic
from tests.moodstream.proc_utils import stop

NOW = time.time()


def headers(live: bool, capture_ts: float, seq: int = 0, camera: str = "cam") -> FrameHeaders:
    return FrameHeaders(camera, f"{camera}-s", seq, capture_ts, seq / 5, 640, 360, run_id="r1",
                        live=live)


# ------------------------------------------------------------------ the header flag

def test_live_header_round_trips_and_is_absent_for_files():
    live = headers(True, NOW)
    assert ("live", b"1") in live.to_kafka()
    assert FrameHeaders.from_kafka(live.to_kafka()).live is True
    file = headers(False, NOW)
    assert all(key != "live" for key, _ in file.to_kafka())  # older consumers see no change
    assert FrameHeaders.from_kafka(file.to_kafka()).live is False
    explicit_no = [*file.to_kafka(), ("live", b"0")]
    assert FrameHeaders.from_kafka(explicit_no).live is False


@pytest.mark.parametrize("value", [b"true", b"yes", b"2", b"", b" 1"])
def test_live_header_is_parsed_strictly(value):
    with pytest.raises(MessageError, match="live"):
        FrameHeaders.from_kafka([*headers(False, NOW).to_kafka(), ("live", value)])


def test_ingest_marks_frames_of_live_sources_only():
    from ingest.camera import CameraWorker
    from ingest.config import CameraConfig
    from ingest.metrics import IngestMetrics
    from ingest.source import RawFrame, ReaderTuning

    class Publisher:
        def __init__(self):
            self.frames = []

        def publish_frame(self, frame_headers, data, policy):
            self.frames.append(frame_headers)
            return True

        def publish_control(self, event):
            pass

    seen = {}
    for url in ("rtsp://camera.local/stream1", "0", "/videos/visit.mp4"):
        publisher = Publisher()
        worker = CameraWorker(CameraConfig(id="cam", url=url), publisher, IngestMetrics(),
                              threading.Event(), ReaderTuning(), (4, 4), "run1")
        worker._process(RawFrame(np.zeros((36, 64, 3), np.uint8), 0.0, time.time(), 0))
        seen[url] = [h.live for h in publisher.frames]
    assert seen == {"rtsp://camera.local/stream1": [True], "0": [True],
                    "/videos/visit.mp4": [False]}


# ------------------------------------------------------------------ the rule

def service(max_lag_s: float = 2.0) -> DetectorService:
    return DetectorService(DetectorSettings.load(kafka_bootstrap_servers="unused:1",
                                                 max_lag_s=max_lag_s))


def record(published_s: float | None):
    return SimpleNamespace(timestamp=None if published_s is None else int(published_s * 1000))


def test_only_live_frames_read_later_than_max_lag_are_stale():
    det = service(2.0)
    old, late = NOW - 30, NOW - 2.5
    assert det.is_stale(headers(True, old), record(old))
    assert det.is_stale(headers(True, late), record(late))
    assert det.is_stale(headers(True, late), record(None))  # no record time: capture time
    assert not det.is_stale(headers(True, time.time() - 1.0), record(time.time() - 1.0))
    # Files never skip, however old their frames.
    assert not det.is_stale(headers(False, old), record(old))
    # A camera clock running behind: old capture time, freshly published. Not stale, else
    # every frame of that camera would be skipped.
    assert not det.is_stale(headers(True, old), record(time.time()))
    assert not service(0).is_stale(headers(True, old), record(old))  # 0 = never skip


def test_max_lag_setting_env_and_bounds(monkeypatch):
    assert DetectorSettings.load(kafka_bootstrap_servers="k:1").max_lag_s == 2.0
    monkeypatch.setenv("MOODSTREAM_DETECTOR_MAX_LAG_S", "0.5")
    assert DetectorSettings.load(kafka_bootstrap_servers="k:1").max_lag_s == 0.5
    with pytest.raises(SettingsError, match="max_lag_s"):
        DetectorSettings.load(kafka_bootstrap_servers="k:1", max_lag_s=-1)


# ------------------------------------------------------------------ end to end

def publish(env: dict, items: list[tuple[FrameHeaders, float]], image) -> None:
    """Frames with the given headers, each published with the given record time."""
    producer = KafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    topic = Topics(env["MOODSTREAM_TOPIC_PREFIX"]).frames
    for frame_headers, published_s in items:
        producer.send(topic, key=frame_headers.camera_id.encode(), value=jpeg(image),
                      headers=frame_headers.to_kafka(), timestamp_ms=int(published_s * 1000))
    producer.flush()
    producer.close()


def wait_for(predicate, timeout_s: float, what: str, procs, logs) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            pytest.fail(f"a service exited early: {[p.read_text()[-1500:] for p in logs]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}: {[p.read_text()[-1500:] for p in logs]}")


@pytest.mark.integration
@pytest.mark.slow
def test_a_detector_behind_on_a_live_camera_skips_to_the_newest_frames_and_counts_them(
        stack_env, tmp_path):
    """Live frames published 30 s ago are skipped as stale (metric, detections, session meta
    in Redis); a file's frames just as old are all analysed; live frames that arrive while
    the detector keeps up are analysed again."""
    face = clip_frames("single_face_smile.mp4", 12)[0]
    publish_frames(stack_env, [], [])  # creates the topics
    old = time.time() - 30
    backlog = [(headers(True, old + i / 5, i, "live-cam"), old + i / 5) for i in range(6)]
    backlog += [(headers(False, old + i / 5, i, "file-cam"), old + i / 5) for i in range(6)]
    publish(stack_env, backlog, face)

    port = free_port()
    logs = [tmp_path / "detector.log", tmp_path / "aggregator.log"]
    detector = subprocess.Popen(
        [sys.executable, "-m", "detector", "--assign", "all", "--max-lag-s", "5",
         "--max-wait-ms", "50", "--metrics-port", str(port)],
        cwd=REPO, env=stack_env, stdout=subprocess.DEVNULL, stderr=logs[0].open("w"))
    aggregator = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--assign", "all"], cwd=REPO, env=stack_env,
        stdout=subprocess.DEVNULL, stderr=logs[1].open("w"))
    r = redis.Redis.from_url(stack_env["REDIS_URL"], decode_responses=True)
    keys = RedisKeys(stack_env["MOODSTREAM_REDIS_PREFIX"])

    def handled(session: str) -> int:
        totals = r.hgetall(keys.totals(session))
        return int(totals.get("frames", 0)) + int(totals.get("skipped_frames", 0))

    procs = [detector, aggregator]
    try:
        wait_for(lambda: handled("live-cam-s") == 6 and handled("file-cam-s") == 6, 90,
                 "the backlog in Redis", procs, logs)
        # Caught up: newer live frames are analysed as they come, also those of a camera
        # whose clock runs 30 s behind (seq 6: old capture time, published now).
        now = time.time()
        publish(stack_env, [(headers(True, old, 6, "live-cam"), now)]
                + [(headers(True, now, i, "live-cam"), now) for i in range(7, 10)], face)
        wait_for(lambda: handled("live-cam-s") == 10, 60, "the fresh live frames", procs, logs)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        codes = [stop(p) for p in procs]
    assert codes == [0, 0], [p.read_text()[-1500:] for p in logs]

    live_meta, live_totals = r.hgetall(keys.meta("live-cam-s")), r.hgetall(keys.totals("live-cam-s"))
    assert live_meta["stale_frames"] == "6"
    assert live_totals["skipped_frames"] == "6" and live_totals["frames"] == "4"
    file_meta, file_totals = r.hgetall(keys.meta("file-cam-s")), r.hgetall(keys.totals("file-cam-s"))
    assert "stale_frames" not in file_meta and "skipped_frames" not in file_totals
    assert file_totals["frames"] == "6" and int(file_totals["faces"]) >= 6

    records = read_topic(stack_env, Topics(stack_env["MOODSTREAM_TOPIC_PREFIX"]).detections, 16,
                         timeout_s=30)
    messages = [DetectionMessage.from_bytes(rec.value) for rec in records]
    stale = sorted(m.seq for m in messages if m.skipped == SKIPPED_STALE)
    assert stale == list(range(6)) and all(m.camera_id == "live-cam" for m in messages
                                           if m.skipped)
    assert all(not m.faces for m in messages if m.skipped)
    analysed = sorted((m.camera_id, m.seq) for m in messages if not m.skipped)
    assert analysed == [("file-cam", i) for i in range(6)] + [("live-cam", i) for i in range(6, 10)]
    assert b'detector_stale_frames_total{camera="live-cam"} 6.0' in metrics
    assert "skipping frames older than 5.0 s" in logs[0].read_text()
