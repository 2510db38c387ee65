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


def test_broker_outage_drops_are_counted_and_publishing_resumes(unique_prefix):
    port = free_port()
    broker = EmbeddedKafka(port=port).start()
    camera = MjpegServer(clip_jpegs(require(VIDEOS / "single_face_smile.mp4")), fps=20).start()
    cam = CameraConfig(id="shop", url=camera.url, fps=10)
    try:
        with RunningIngest(broker.bootstrap, unique_prefix, [cam], publish_buffer=15,
                           delivery_timeout_s=30) as ingest:
            counts = ingest.counts("shop")
            assert wait_until(lambda: counts.published >= 5, 15)
            broker.stop()  # memory storage: the restarted broker starts empty
            assert wait_until(lambda: counts.dropped["broker_buffer_full"] >= 5, 15)
            assert ingest.alive() and counts.state is SourceState.STREAMING
            published_before = counts.published

            broker = EmbeddedKafka(port=port).start()
            # The frames buffered during the outage are delivered, then new ones follow.
            assert wait_until(lambda: counts.published >= published_before + 30, 30)
            assert ingest.service.publisher.pending < 15
        assert ingest.exit_code == 0
        after = read_topics(broker.bootstrap, unique_prefix, lambda g: bool(g.ends()) and
                            len(g.frames) >= counts.published - published_before)
        [end] = after.ends()
        assert end.reason == "shutdown" and end.frames_published == counts.published
        # The empty restarted broker got the topics back with their partitions (no auto-create).
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
        assert len(consumer.partitions_for_topic(f"{unique_prefix}.frames")) == 4
        consumer.close()
        # Everything the restarted broker got came after the outage: seq goes on, no restart.
        assert min(h.seq for _, h, _ in after.frames) >= published_before
        assert len(after.frames) == counts.published - published_before
    finally:
        camera.stop()
        broker.stop()
