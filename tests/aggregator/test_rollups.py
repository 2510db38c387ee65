"""Hourly rollups on a real Valkey: recomputed from the buckets the real apply script wrote,
equal to the clip's own numbers, idempotent under recompute, redelivery and restart,
finalised when a session closes, pruned past retention; and the backfill from summaries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from aggregator.rollups import HourlyRollups
from aggregator.service import Aggregator
from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS, sentiment
from moodstream.redis_keys import ROLLUP_FIELDS, parse_rollup
from moodstream.rollups import HOUR_S, backfill, hour_of
from moodstream.topics import Topics
from tests.aggregator.conftest import REPO_ROOT, T0, control, detection

pytestmark = pytest.mark.integration

FPS = 0.25  # one frame every 4 s: 800 frames span 3200 s, across an hour boundary
MOODS = ["happy", "sad", "angry", "neutral", "surprise"]
TTL = 400 * 86400


def clip(n: int = 800, session: str = "s1", camera: str = "cam1", offset: int = 0):
    """Frames with 0-2 faces; tracks change every 100 frames (new people arrive)."""
    out = []
    for seq in range(n):
        faces = [] if seq % 5 == 4 else [MOODS[(seq + i) % len(MOODS)] for i in range(1 + seq % 2)]
        tracks = [offset + seq // 100 * 2 + i for i in range(len(faces))]
        out.append(detection(seq, faces, camera=camera, session=session, fps=FPS, tracks=tracks))
    return out


def expected(messages, started: float = T0) -> dict[int, list[float]]:
    """The rollup of each hour straight from the messages (not from Redis)."""
    out: dict[int, list[float]] = defaultdict(lambda: [0.0] * len(ROLLUP_FIELDS))
    people: dict[int, set] = defaultdict(set)
    for msg in messages:
        hour = hour_of(started + int(msg.offset_s))
        row = out[hour]
        row[0] += 1
        row[1] += len(msg.faces)
        for face in msg.faces:
            row[2] += sentiment(face.probs, DEFAULT_VALENCE)
            people[hour].add(face.track_id)
            for i, emotion in enumerate(EMOTIONS):
                row[4 + i] += face.probs[emotion]
    for hour, tracks in people.items():
        out[hour][3] = len(tracks)
    return dict(out)


def rollups(r, keys, camera: str = "cam1") -> dict[int, list[float]]:
    return {int(h): parse_rollup(v) for h, v in r.hgetall(keys.rollup_hourly(camera)).items()}


def assert_site_sums(r, keys, per_camera: dict[str, dict[int, list[float]]]) -> None:
    """The site's hours are the cameras' sums, each day the sum of its hours, per camera too."""
    site = {int(h): parse_rollup(v) for h, v in r.hgetall(keys.rollup_site("hourly")).items()}
    wanted: dict[int, list[float]] = {}
    for hours in per_camera.values():
        for hour, row in hours.items():
            wanted[hour] = [a + b for a, b in zip(wanted.get(hour, [0.0] * len(row)), row)]
    assert_rollups(site, wanted)
    for daily_key, hourly in [(keys.rollup_site("daily"), site)] + [
            (keys.rollup_daily(c), rows) for c, rows in per_camera.items()]:
        days = {int(d): parse_rollup(v) for d, v in r.hgetall(daily_key).items()}
        assert sorted(days) == sorted({h - h % 86400 for h in hourly})
        for day, row in days.items():
            summed = [sum(col) for col in zip(*(v for h, v in hourly.items()
                                                 if h - h % 86400 == day))]
            assert row == pytest.approx(summed, rel=1e-6, abs=1e-4)


def assert_rollups(actual: dict, wanted: dict) -> None:
    assert sorted(actual) == sorted(wanted)
    for hour, row in wanted.items():
        assert actual[hour] == pytest.approx(row, rel=1e-6, abs=1e-4), hour


@pytest.fixture
def writer(redis_conn, keys):
    return HourlyRollups(redis_conn, keys, rollup_ttl_s=TTL, parts_ttl_s=0, every_s=30)


def test_rollup_equals_the_clip_and_recompute_is_idempotent(make_store, redis_conn, keys, writer):
    store, messages = make_store(), clip()
    store.start_session(control("session_start"))
    store.apply_detections(messages)
    now = T0 + 3300
    assert writer.run(now) == 2  # the session's part of each of its two hours
    wanted = expected(messages)
    assert len(wanted) == 2 and all(row[3] >= 2 for row in wanted.values())
    assert_rollups(rollups(redis_conn, keys), wanted)
    assert writer.run(now + 30) == 0  # nothing changed: no recompute
    # Redelivery (the apply script dedupes) and a restarted writer (no memory) recompute
    # the same numbers: nothing counts twice.
    store.apply_detections(messages)
    restarted = HourlyRollups(redis_conn, keys, rollup_ttl_s=TTL, parts_ttl_s=0)
    assert restarted.run(now + 60) == 2
    restarted.run(now + 90)
    assert_rollups(rollups(redis_conn, keys), wanted)
    assert 0 < redis_conn.ttl(keys.rollup_hourly("cam1")) <= TTL


def test_two_sessions_of_one_camera_add_up_in_the_hour(make_store, redis_conn, keys, writer):
    store = make_store()
    first, second = clip(300, "s1"), clip(200, "s2", offset=100)
    store.apply_detections(first)
    writer.run(T0 + 1200)
    # s2 starts later in the same hour (its own started_at): parts add up, never overwrite.
    second = [msg.model_copy(update={"capture_ts": msg.capture_ts + 400}) for msg in second]
    store.apply_detections(second)
    writer.run(T0 + 1250)
    wanted = expected(first)
    for hour, row in expected(second, T0 + 400).items():
        base = wanted.setdefault(hour, [0.0] * len(ROLLUP_FIELDS))
        wanted[hour] = [a + b for a, b in zip(base, row)]
    assert_rollups(rollups(redis_conn, keys), wanted)
    assert set(redis_conn.hkeys(keys.rollup_parts("cam1", hour_of(T0)))) == {"s1", "s2"}


def test_a_closed_session_has_every_hour_finalised(make_store, redis_conn, keys, writer):
    store = make_store()
    messages = clip(2000)  # 8000 s of video: three hours
    store.start_session(control("session_start"))
    store.apply_detections(messages[:100])
    writer.run(T0 + 400)  # seen open: pending
    assert redis_conn.zscore(keys.rollups_pending, "s1") is not None
    store.apply_detections(messages[100:])
    assert store.close_session("s1", "complete") == "cam1"
    store.write_summary("s1")
    # Hours later: the periodic window no longer covers the session, finalisation does.
    writer.run(T0 + 6 * HOUR_S)
    assert_rollups(rollups(redis_conn, keys), expected(messages))
    assert len(expected(messages)) == 3
    assert_site_sums(redis_conn, keys, {"cam1": expected(messages)})
    assert redis_conn.zscore(keys.rollups_pending, "s1") is None


def test_housekeeping_runs_the_rollups(make_store, redis_conn, keys):
    topics = Topics(keys.prefix)
    clock = [T0 + 3300]
    hourly = HourlyRollups(redis_conn, keys, TTL, 0, every_s=30, clock=lambda: clock[0])
    aggregator = Aggregator(make_store(), topics, idle_timeout_s=3600, end_grace_s=5,
                            rollups=hourly)

    class Rec:
        def __init__(self, msg):
            self.topic, self.value, self.partition, self.offset = (
                topics.detections, msg.to_bytes(), 0, 0)

    messages = clip(400)
    aggregator.process([Rec(m) for m in messages])
    aggregator.housekeeping(force=True)
    assert_rollups(rollups(redis_conn, keys), expected(messages))


def test_hours_past_retention_are_pruned(redis_conn, keys):
    hourly = HourlyRollups(redis_conn, keys, rollup_ttl_s=10 * HOUR_S, parts_ttl_s=0)
    now = hour_of(T0)
    old, recent = now - 20 * HOUR_S, now - 2 * HOUR_S
    redis_conn.hset(keys.rollup_hourly("cam1"), mapping={old: "1,0,0,0" + ",0" * 7,
                                                         recent: "1,0,0,0" + ",0" * 7})
    redis_conn.hset(keys.rollup_site("hourly"), mapping={old: "1" + ",0" * 10})
    assert hourly.writer.prune(["cam1"], now) == 2
    assert redis_conn.hkeys(keys.rollup_hourly("cam1")) == [str(recent)]
    assert redis_conn.hlen(keys.rollup_site("hourly")) == 0


def test_backfill_rebuilds_from_summaries_and_is_idempotent(make_store, redis_conn, keys, writer):
    store = make_store()
    messages = clip(800) + clip(300, "s2", "cam2")
    store.apply_detections(messages)
    for session in ("s1", "s2"):
        store.close_session(session, "complete")
        store.write_summary(session)
    writer.run(T0 + 3300)
    live = {c: rollups(redis_conn, keys, c) for c in ("cam1", "cam2")}
    for key in redis_conn.scan_iter(f"{keys.prefix}:camera:*:rollup:*"):
        redis_conn.delete(key)  # rollups lost: only the summaries remain
    stats = backfill(redis_conn, keys, TTL, 0)
    assert stats == {"sessions": 2, "parts": 3, "skipped": 0}
    rebuilt = {c: rollups(redis_conn, keys, c) for c in ("cam1", "cam2")}
    for camera in rebuilt:
        assert sorted(rebuilt[camera]) == sorted(live[camera])
        for hour, row in live[camera].items():
            # Summaries keep means rounded to 4 places, and people per second, not ids.
            assert rebuilt[camera][hour][:3] == pytest.approx(row[:3], rel=1e-3, abs=0.05)
            assert 1 <= rebuilt[camera][hour][3] <= row[3]
    backfill(redis_conn, keys, TTL, 0)
    assert {c: rollups(redis_conn, keys, c) for c in ("cam1", "cam2")} == rebuilt
    assert_site_sums(redis_conn, keys, rebuilt)
    # Parts the aggregator wrote from the buckets win over the summary's approximation.
    writer = HourlyRollups(redis_conn, keys, rollup_ttl_s=TTL, parts_ttl_s=0)
    for key in redis_conn.scan_iter(f"{keys.prefix}:camera:*:rollup:*"):
        redis_conn.delete(key)
    writer.run(T0 + 3300)
    backfill(redis_conn, keys, TTL, 0)
    assert_rollups(rollups(redis_conn, keys), live["cam1"])


def test_backfill_command(make_store, redis_conn, keys, redis_server):
    store = make_store()
    store.apply_detections(clip(100))
    store.close_session("s1", "complete")
    store.write_summary("s1")
    env = dict(os.environ, REDIS_URL=f"redis://{redis_server.host}:{redis_server.port}/15",
               MOODSTREAM_REDIS_PREFIX=keys.prefix)
    run = [sys.executable, "-m", "moodstream", "backfill-rollups"]
    done = subprocess.run(run, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 session" in done.stdout and "1 camera-hour part" in done.stdout
    assert sorted(rollups(redis_conn, keys)) == [hour_of(T0)]
    bad = subprocess.run(run + ["--rollup-ttl-s", "-5"], env=env, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_session_between_two_distant_passes_is_caught_up(make_store, redis_conn, keys, writer):
    """No pass ran while it started and closed (the aggregator was catching up a backlog,
    housekeeping paused): the next pass still finalises it."""
    writer.run(T0 - 10)  # the previous pass, before the session
    store, messages = make_store(), clip(300)
    store.apply_detections(messages)
    store.close_session("s1", "complete")
    store.write_summary("s1")
    writer.run(T0 + 5 * HOUR_S)
    assert_rollups(rollups(redis_conn, keys), expected(messages))


@pytest.mark.slow
def test_the_aggregator_process_rolls_up_exactly_once_across_redelivery(stack_env, tmp_path):
    """Kafka -> `python -m aggregator` -> Redis; then killed, and a second aggregator in a
    new consumer group reads the whole stream again: the rollups still equal the clip's."""
    from tests.aggregator.test_main import prepare, produce, start_aggregator, stop, wait_for

    r, keys = prepare(stack_env)
    shift = time.time() - 3000 - T0  # the clip started 50 minutes ago
    messages = [m.model_copy(update={"capture_ts": m.capture_ts + shift}) for m in clip(800)]
    wanted = expected(messages, T0 + shift)
    produce(stack_env, [*messages, control("session_end", frames=len(messages))])
    env = dict(stack_env, MOODSTREAM_AGGREGATOR_ROLLUP_EVERY_S="0.5")
    log_path = tmp_path / "aggregator.log"
    first = start_aggregator(env, log_path)
    try:
        wait_for(lambda: r.hget(keys.meta("s1"), "status") == "closed"
                 and sorted(rollups(r, keys)) == sorted(wanted), 60, "the session's hours",
                 first, log_path)
    finally:
        stop(first, signal.SIGKILL)
    assert_rollups(rollups(r, keys), wanted)
    second = start_aggregator(dict(env, MOODSTREAM_AGGREGATOR_GROUP_ID="again"), log_path)
    try:
        wait_for(lambda: log_path.read_text().count("session s1 ending") == 2, 60,
                 "the stream read again", second, log_path)
        time.sleep(2)  # a few rollup passes over the redelivered stream
    finally:
        assert stop(second) == 0
    assert "duplicates=800" in log_path.read_text().split("stopped: Counters(")[-1]
    assert_rollups(rollups(r, keys), wanted)
    assert_site_sums(r, keys, {"cam1": wanted})


def test_rollup_settings_come_from_the_aggregators_env(monkeypatch):
    from aggregator.settings import AggregatorSettings
    from moodstream.settings import SettingsError

    assert AggregatorSettings.load().rollup_ttl_s == TTL
    monkeypatch.setenv("MOODSTREAM_AGGREGATOR_ROLLUP_TTL_S", "86400")
    monkeypatch.setenv("ROLLUP_EVERY_S", "1")  # a bare name changes nothing
    settings = AggregatorSettings.load()
    assert (settings.rollup_ttl_s, settings.rollup_every_s) == (86400, 30.0)
    monkeypatch.setenv("MOODSTREAM_AGGREGATOR_ROLLUP_EVERY_S", "0")
    with pytest.raises(SettingsError, match="rollup_every_s"):
        AggregatorSettings.load()


def test_the_hour_just_past_takes_late_frames_every_few_minutes(make_store, redis_conn, keys,
                                                                writer):
    from aggregator.rollups import PAST_HOUR_EVERY_S

    store, messages = make_store(), clip(800)
    store.apply_detections(messages)
    now = T0 + 3300  # the clip's second hour is the current one
    writer.run(now)
    late = detection(5000, ["happy"], fps=FPS, tracks=[99]).model_copy(
        update={"offset_s": 100.0, "capture_ts": T0 + 100.0})  # lands in the first hour
    store.apply_detections([late])
    writer.run(now + 30)  # the current hour is redone; the hour past waits
    first_hour = hour_of(T0)
    assert rollups(redis_conn, keys)[first_hour] == pytest.approx(expected(messages)[first_hour])
    writer.run(now + PAST_HOUR_EVERY_S + 1)
    assert_rollups(rollups(redis_conn, keys), expected([*messages, late]))
