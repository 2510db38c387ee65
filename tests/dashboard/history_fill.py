"""Rollups for the History tests, written by the real code: sessions applied by the
aggregator (tests.dashboard.redis_fill) and rolled up by its writer, the closed old one by
the backfill, plus 30 days of past camera-hours through RollupWriter."""

from __future__ import annotations

import time

import redis

from aggregator.rollups import HourlyRollups
from moodstream.redis_keys import ROLLUP_FIELDS, RedisKeys
from moodstream.rollups import DAY_S, HOUR_S, PartWrite, RollupWriter, backfill, hour_of
from tests.dashboard.redis_fill import Filler

TTL = 400 * DAY_S
PAST_HOURS = range(3, 30 * 24, 5)  # hours ago with a past rollup, on cam-a and cam-c


def row(frames=10, faces=4, sentiment_sum=2.0, people=3) -> list[float]:
    values = [0.0] * len(ROLLUP_FIELDS)
    values[:4] = [frames, faces, sentiment_sum, people]
    return values


def seed_history(client: redis.Redis, prefix: str) -> RedisKeys:
    keys, now = RedisKeys(prefix), time.time()
    filler = Filler(client, prefix)
    filler.aggregator.rollups = HourlyRollups(client, keys, TTL, 0, every_s=0)
    filler.session("cam-a", "sess-a0", now - 7200, 30, 0.5, 0.6, end=True)
    filler.session("cam-a", "sess-a1", now - 120, 120, 0.8, -0.9)
    filler.session("cam-b", "sess-b1", now - 60, 60, -0.2, 0.9, people=3)
    backfill(client, keys, TTL, 0)
    filler.aggregator.rollups.run(time.time())
    past = [PartWrite(camera, hour_of(now) - h * HOUR_S, f"old-{camera}-{h}",
                      row(frames=100, faces=20 + h % 5, sentiment_sum=(h % 7 - 3) * 2.0,
                          people=1 + h % 4))
            for camera in ("cam-a", "cam-c") for h in PAST_HOURS]
    RollupWriter(client, keys, TTL, 0).write(past)
    return keys
