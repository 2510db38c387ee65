"""Worker health never stops supervision: a Redis it cannot reach, or a cluster URL."""

from __future__ import annotations

import redis

from moodstream.clients import redis_from_url
from moodstream.embedded import free_port
from moodstream.supervision import HealthBoard


def test_a_plain_url_gives_a_plain_client_without_connecting():
    client = redis_from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    assert isinstance(client, redis.Redis)


def test_an_unreachable_cluster_url_leaves_health_unrecorded_instead_of_failing(caplog):
    board = HealthBoard(f"redis+cluster://127.0.0.1:{free_port()}", "ms")
    assert board.client is None
    board.publish([{"name": "detector", "state": "running", "updated_at": 1.0}], force=True)
    board.clear()
    assert "worker health will not be recorded" in caplog.text


def test_a_malformed_url_leaves_health_unrecorded():
    assert HealthBoard("nonsense://x", "ms").client is None
