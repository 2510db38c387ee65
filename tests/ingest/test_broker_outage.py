"""A broker stopped and restarted on the same port: ingest keeps running, counts the frames
it had to drop, and publishes again once the broker is back."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

from ingest.config import CameraConfig
from ingest.source import SourceState
from moodstream.embedded import EmbeddedKafka, free_port
from tests.conftest import VIDEOS, require
from tests.ingest.helpers import MjpegServer, RunningIngest, clip_jpegs, read_topics, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def tail_complete(got, total: int) -> bool:
    """Frames seq..total-1 all there, from the lowest seq received (duplicates allowed)."""
    seqs = {h.seq for _, h, _ in got.frames}
    return bool(seqs) and seqs == set(range(min(seqs), total))


def crash(broker: EmbeddedKafka) -> None:
    """The broker dies at once (SIGKILL), as in a crash or a lost host."""
    broker.proc.kill()
    broker.stop()


def test_broker_outage_drops_are_counted_and_publishing_resumes(unique_prefix):
    port = free_port()
    broker = EmbeddedKafka(port=port).start()
    camera = MjpegServer(clip_jpegs(require(VIDEOS / "single_face_smile.mp4")), fps=20).start()
    cam = CameraConfig(id="shop", url=camera.url, fps=10, session={"every_s": 0})  # one session
    try:
        with RunningIngest(broker.bootstrap, unique_prefix, [cam], publish_buffer=15,
                           delivery_timeout_s=30) as ingest:
            counts = ingest.counts("shop")
            assert wait_until(lambda: counts.published >= 5, 15)
            crash(broker)  # memory storage: the restarted broker starts empty
            assert wait_until(lambda: counts.dropped["broker_buffer_full"] >= 5, 15)
            assert ingest.alive() and counts.state is SourceState.STREAMING
            published_before = counts.published

            broker = EmbeddedKafka(port=port).start()
            # The frames buffered during the outage are delivered, then new ones follow.
            assert wait_until(lambda: counts.published >= published_before + 30, 30)
            assert ingest.service.publisher.pending < 15
        assert ingest.exit_code == 0
        after = read_topics(broker.bootstrap, unique_prefix, lambda g: bool(g.ends()) and
                            len({h.seq for _, h, _ in g.frames})
                            >= counts.published - published_before)
        [end] = after.ends()
        assert end.reason == "shutdown" and end.frames_published == counts.published
        # The empty restarted broker got the topics back with their partitions (no auto-create).
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
        assert len(consumer.partitions_for_topic(f"{unique_prefix}.frames")) == 4
        consumer.close()
        # Everything the restarted broker got came after the outage: seq goes on, no restart.
        # (A retried send may land twice; consumers dedupe by seq, so count distinct ones.)
        seqs = {h.seq for _, h, _ in after.frames}
        assert min(seqs) >= published_before
        assert len(seqs) == counts.published - published_before
    finally:
        camera.stop()
        broker.stop()


def test_file_frames_wait_for_the_broker_and_none_are_lost(unique_prefix):
    port = free_port()
    broker = EmbeddedKafka(port=port).start()
    cam = CameraConfig(id="recorded", url=str(require(VIDEOS / "single_face_smile.mp4")),
                       fps=0, session={"id": "rec-1"})  # real-time file: 72 frames in 2.4 s
    try:
        with RunningIngest(broker.bootstrap, unique_prefix, [cam], publish_buffer=10) as ingest:
            counts = ingest.counts("recorded")
            assert wait_until(lambda: counts.published >= 5, 15)
            counts_at_crash = counts.published
            crash(broker)
            assert wait_until(lambda: ingest.service.publisher.pending >= 10, 10)
            assert counts.read < 72 and ingest.alive()  # the reader waits, it does not drop
            broker = EmbeddedKafka(port=port).start()
            assert ingest.wait_done(40) == 0
        assert (counts.read, counts.published, counts.dropped) == (72, 72, {})
        after = read_topics(broker.bootstrap, unique_prefix,
                            lambda g: bool(g.ends()) and tail_complete(g, 72))
        assert after.ends()[0].frames_published == 72
        # The first frames went to the broker that died; every later one reached the new one.
        assert tail_complete(after, 72) and len(after.frames) > 72 - 10 - counts_at_crash
    finally:
        broker.stop()
