"""Sampling, pacing, drop policies, backoff and sessions: the pure parts of ingest."""

from __future__ import annotations

import random
import threading
import time

from ingest.config import CameraConfig, SessionPolicy
from ingest.sampling import SENTINEL, DropPolicy, FrameQueue, FrameSampler, RealtimePacer
from ingest.sessions import SessionTracker, automatic_id
from ingest.source import Backoff, FrameReader, is_live
from moodstream.schemas import valid_id


def test_sampler_keeps_every_third_frame_of_30fps_at_10fps():
    sampler = FrameSampler(10)
    kept = [i for i in range(90) if sampler.keep(i / 30)]
    assert kept == list(range(0, 90, 3))


def test_sampler_zero_fps_keeps_all_and_no_burst_after_a_pause():
    assert all(FrameSampler(0).keep(t) for t in (0, 0, 0.001))
    sampler = FrameSampler(2)
    assert sampler.keep(0.0) and not sampler.keep(0.2)
    assert sampler.keep(10.0)  # after a 10 s gap: one frame, not a catch-up burst
    assert not sampler.keep(10.1) and sampler.keep(10.5)


def test_drop_oldest_queue_keeps_newest_and_counts():
    q = FrameQueue(2, DropPolicy.DROP_OLDEST, threading.Event())
    dropped = sum(q.put(i) for i in range(5))
    assert dropped == 3
    assert q.close() == 1  # the sentinel always gets in, evicting one more frame
    assert [q.get(), q.get()] == [4, SENTINEL]


def test_wait_queue_blocks_until_consumer_takes():
    q = FrameQueue(1, DropPolicy.WAIT, threading.Event())
    q.put("a")
    done = threading.Event()
    threading.Thread(target=lambda: (q.put("b"), done.set()), daemon=True).start()
    assert not done.wait(0.3)  # blocked, nothing dropped
    assert q.get() == "a" and done.wait(2) and q.get() == "b"


def test_wait_queue_gives_up_on_stop():
    stop = threading.Event()
    q = FrameQueue(1, DropPolicy.WAIT, stop)
    q.put("a")
    stop.set()
    assert q.put("b") == 1  # on shutdown the reader must not hang: counted as dropped


def test_realtime_pacer_waits_for_media_time():
    pacer = RealtimePacer(threading.Event())
    start = time.monotonic()
    for media in (5.0, 5.1, 5.3):
        pacer.wait_for(media)
    assert 0.28 <= time.monotonic() - start < 0.6


def test_backoff_is_capped_exponential_with_jitter():
    backoff = Backoff(0.5, 4.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 4, 4, 4, 4]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings))
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_live_and_file_sources_get_their_drop_policy():
    assert is_live("0") and is_live("rtsp://cam/1") and not is_live("/v/a.mp4")
    policy = FrameReader.drop_policy
    assert policy(CameraConfig(id="a", url="rtsp://x/y")) is DropPolicy.DROP_OLDEST
    assert policy(CameraConfig(id="a", url="clip.mkv")) is DropPolicy.WAIT


def test_session_gap_and_schedule_rollover():
    tracker = SessionTracker("cam", SessionPolicy(gap_s=5, every_s=3600))
    first = tracker.on_frame(0.0, 7200.0).started
    assert first.id == automatic_id("cam", 7200.0) and valid_id(first.id)
    assert tracker.on_frame(4.0, 7204.0).started is None
    gap = tracker.on_frame(10.0, 7210.0)
    assert (gap.ended, gap.reason) == (first, "gap") and gap.started.start_media_s == 10.0
    hourly = tracker.on_frame(11.0, 10800.5)
    assert hourly.reason == "schedule" and hourly.started.id != gap.started.id


def test_explicit_session_never_rolls_over():
    tracker = SessionTracker("cam", SessionPolicy(id="call-1", gap_s=1, every_s=10))
    assert tracker.on_frame(0, 0).started.id == "call-1"
    assert tracker.on_frame(100, 100).started is None
    assert tracker.finish().id == "call-1" and tracker.finish() is None


def test_automatic_ids_stay_unique_within_a_second():
    tracker = SessionTracker("cam", SessionPolicy(gap_s=0.5))
    a = tracker.on_frame(0, 100.0).started.id
    b = tracker.on_frame(1, 100.2).started.id
    assert a != b and b.startswith(a) and valid_id(b)


def test_publisher_drops_and_counts_a_frame_the_producer_rejects():
    from kafka.errors import MessageSizeTooLargeError

    from ingest.metrics import IngestMetrics
    from ingest.publisher import Publisher
    from moodstream.schemas import FrameHeaders
    from moodstream.topics import Topics

    class RejectingProducer:  # unit-level fake: the real producer raises this for huge frames
        def send(self, *args, **kwargs):
            raise MessageSizeTooLargeError("frame larger than max_request_size")

    metrics = IngestMetrics()
    publisher = Publisher(RejectingProducer(), Topics("t"), 4, metrics, threading.Event())
    headers = FrameHeaders("cam", "s", 0, 0.0, 0.0)
    # Even under WAIT (files) a rejected frame is not retried forever.
    assert publisher.publish_frame(headers, b"jpeg", DropPolicy.WAIT) is False
    assert metrics.counts("cam").dropped == {"rejected": 1} and publisher.pending == 0
