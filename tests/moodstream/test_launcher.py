"""The launcher's supervision on real processes and a real Redis: restart with backoff,
give up on a crash loop, never restart a configuration error, and record worker health
where the dashboard reads it."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from dashboard.workers import read_workers, workers_line
from moodstream.launcher import ServiceFailed, Stack
from moodstream.redis_keys import RedisKeys
from moodstream.supervision import LauncherSettings

pytestmark = [pytest.mark.integration]

CHILD = "tests.moodstream.launcher_child"


@pytest.fixture
def settings(kafka_server, redis_server, unique_prefix) -> LauncherSettings:
    return LauncherSettings.load(kafka_bootstrap_servers=kafka_server.bootstrap,
                                 redis_url=redis_server.url, redis_prefix=unique_prefix,
                                 topic_prefix=unique_prefix, backoff_initial_s=0.2,
                                 backoff_max_s=1.0, max_crashes=3)


def supervise_until(stack: Stack, predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, [s.health() for s in stack.services]
        stack.supervise()
        time.sleep(0.05)


def test_a_crashed_worker_is_restarted_and_its_health_is_in_redis(settings, redis_server,
                                                                  tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="moodstream")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    key = RedisKeys(settings.redis_prefix).workers
    with Stack(settings) as stack:
        worker = stack.start("detector", module=CHILD,
                             env={"CHILD_ONCE": str(tmp_path / "crashed"), "CHILD_EXIT": "1"})
        first_pid = worker.proc.pid
        supervise_until(stack, lambda: worker.crashes.restarts == 1 and worker.running)
        assert (worker.state, worker.last_exit) == ("running", 1)
        assert worker.proc.pid != first_pid
        stack.supervise()
        [health] = read_workers(client, key)
        assert (health.name, health.state, health.pid, health.restarts, health.last_exit) == \
            ("detector", "running", worker.proc.pid, 1, 1)
        assert 0 < client.ttl(key) <= 30  # a dead launcher's records expire
        line = str(workers_line([health]))
        assert "detector running" in line and "1 restart" in line and "exit code 1" in line
    restarts = [r.getMessage() for r in caplog.records if "stopped unexpectedly" in r.getMessage()]
    assert restarts == [f"detector (pid {first_pid}) stopped unexpectedly (exit code 1); "
                        "restart 1 in 0.2 s"]
    assert client.exists(key) == 0  # a stopped stack leaves no stale health behind


def test_a_crash_loop_gives_up_after_max_crashes(settings):
    with Stack(settings) as stack:
        worker = stack.start("aggregator", module=CHILD, env={"CHILD_EXIT": "1"})
        started = time.monotonic()
        with pytest.raises(ServiceFailed) as failure:
            supervise_until(stack, lambda: False, timeout=20)
        # backoff 0.2 s then 0.4 s: the third crash within the minute ends it
        assert time.monotonic() - started < 10
    assert str(failure.value) == "aggregator crashed 3 times within 60 s (exit code 1); giving up"
    assert (worker.crashes.restarts, worker.state) == (2, "stopped")


def test_a_configuration_error_is_never_restarted(settings, tmp_path):
    with Stack(settings, log_dir=tmp_path) as stack:
        worker = stack.start("detector", module=CHILD, env={
            "CHILD_EXIT": "2", "CHILD_SAY": "detector: no such model: x.keras"})
        with pytest.raises(ServiceFailed,
                           match=r"^detector failed: detector: no such model: x\.keras$"):
            supervise_until(stack, lambda: False)
        assert worker.crashes.restarts == 0


def test_a_finished_job_is_done_not_restarted(settings):
    with Stack(settings) as stack:
        job = stack.start("ingest:clip", module=CHILD, env={"CHILD_EXIT": "0"}, job=True)
        supervise_until(stack, lambda: job.state == "done")
        time.sleep(0.5)
        stack.supervise()
        assert (job.state, job.crashes.restarts, job.last_exit) == ("done", 0, 0)


def test_per_child_env_reaches_only_that_child(settings, monkeypatch):
    monkeypatch.setenv("MOODSTREAM_INGEST_RUN_ID", "from-the-shell")
    with Stack(settings) as stack:
        plain = stack.child_env()
        assert "MOODSTREAM_INGEST_RUN_ID" not in plain  # never shared by every ingest
        worker = stack.start("ingest:a", module=CHILD, job=True,
                             env={"MOODSTREAM_INGEST_SOURCE": "rtsp://u:pw@h/s"})
        assert stack.child_env(worker)["MOODSTREAM_INGEST_SOURCE"] == "rtsp://u:pw@h/s"
        assert "pw@" not in " ".join(worker.args)
