"""Hourly rollups per camera, recomputed from the sessions' per-second buckets.

Exactly-once without touching apply_detection.lua: nothing is incremented. Every
`every_s` the aggregator's housekeeping recomputes, for each session that may have
changed (open, pending, or started since the previous hour began), its part of the
current and the previous hour from its buckets, and WRITE_PART (moodstream.rollups) SETs
the part and re-sums the hour. A session that has closed since it was seen open gets
every hour it covers finalised the same way. Recomputing twice gives the same numbers,
so redelivered frames (deduped by the apply script), restarts and overlapping passes
cannot double count.

A restarted writer only looks back to the previous hour: sessions that started earlier and
closed while no pass ran (the aggregator stopped) are left to `moodstream backfill-rollups`.

Cost: one read-only script per (session, hour), looping over that hour's seconds in
Redis (up to now for an open session: at most 3600 HMGETs) and over the session's
"<t>|<track>" pairs for distinct people, SCRIPTS_PER_ROUND scripts a round trip; a session
whose meta `updated_at` has not moved since its last recompute is skipped, and the hour
just past is recomputed every PAST_HOUR_EVERY_S only (late frames), so a busy camera
costs about one current-hour script a pass. A session with more than MAX_TRACK_PAIRS pairs (days long, busy) counts people
as the most distinct tracks in one second of the hour instead (a lower bound).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

import redis

from moodstream.clients import run_pipeline, script_call
from moodstream.redis_keys import PROB_FIELDS, RedisKeys, parse_rollup
from moodstream.rollups import (HOUR_S, PartWrite, RollupWriter, hour_of, hours_between,
                                seconds_in_hour)
from moodstream.schemas import valid_id

log = logging.getLogger(__name__)

ROLLUP_EVERY_S = 30.0
MAX_TRACK_PAIRS = 200_000
MAX_FINALISE_HOURS = 24 * 31
MAX_LOOKBACK_S = 7 * 86400  # the longest pause between passes that is caught up  # earlier hours of a longer session were done while it ran
PRUNE_EVERY_S = HOUR_S
PAST_HOUR_EVERY_S = 300.0  # the hour just past takes only late frames: recomputed less often
LATE_S = 60  # an open session's seconds counted up to now + this (clock skew)
SCRIPTS_PER_ROUND = 16
_META = ("camera_id", "started_at", "status", "updated_at", "last_seen", "ended_at")

# Read-only. KEYS: buckets, bucket_track_ids, bucket_tracks of one session. ARGV: lo, hi
# (bucket seconds, inclusive, checked: whole, lo >= 0, span < ARGV[3]), ARGV[4] = most
# "<t>|<track>" pairs to scan, ARGV[5] = the p:<emotion> names. Returns the part packed in
# ROLLUP_FIELDS order (frames, faces, sentiment_sum, people, p:*), or "" for bad bounds.
SESSION_HOUR = """
local lo, hi, max_span, max_pairs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                                    tonumber(ARGV[4])
if not (lo and hi and lo >= 0 and hi >= lo and hi - lo < max_span
        and math.floor(lo) == lo and math.floor(hi) == hi) then return '' end
local names = {'frames', 'faces', 'sentiment_sum'}
for name in string.gmatch(ARGV[5], '[^,]+') do names[#names + 1] = name end
local sums, fields = {}, {}
for i = 1, #names do sums[i] = 0 end
for t = lo, hi do
  for i, name in ipairs(names) do fields[i] = t .. '|' .. name end
  local v = redis.call('HMGET', KEYS[1], unpack(fields))
  for i = 1, #names do sums[i] = sums[i] + (tonumber(v[i]) or 0) end
end
local people = 0
if redis.call('SCARD', KEYS[2]) <= max_pairs then
  local seen = {}
  for _, pair in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    local sep = string.find(pair, '|', 1, true)
    local t = sep and tonumber(string.sub(pair, 1, sep - 1))
    if t and t >= lo and t <= hi then
      local track = string.sub(pair, sep + 1)
      if not seen[track] then seen[track] = true; people = people + 1 end
    end
  end
else
  for t = lo, hi do
    local n = tonumber(redis.call('HGET', KEYS[3], t)) or 0
    if n > people then people = n end
  end
end
local out = {}
for i = 1, 3 do out[#out + 1] = string.format('%.10g', sums[i]) end
out[#out + 1] = tostring(people)
for i = 4, #names do out[#out + 1] = string.format('%.10g', sums[i]) end
return table.concat(out, ',')
"""


class HourlyRollups:
    """The aggregator's rollup writer; maybe_run() is its housekeeping hook."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, rollup_ttl_s: int,
                 parts_ttl_s: int, every_s: float = ROLLUP_EVERY_S,
                 clock: Callable[[], float] = time.time):
        self.r, self.keys, self.every_s, self.clock = client, keys, every_s, clock
        self.writer = RollupWriter(client, keys, rollup_ttl_s, parts_ttl_s)
        self._read = client.register_script(SESSION_HOUR)
        # (session, hour) -> (its updated_at, when) at the last recompute
        self._computed: dict[tuple[str, int], tuple[str, float]] = {}
        self._finalised: dict[str, str] = {}  # closed session -> updated_at when finalised
        self._last_run: float | None = None
        self._since: int | None = None  # the previous pass's window start
        self._pruned: dict[str, float] = {}

    def maybe_run(self) -> int:
        """run() at most every every_s; a Redis error is logged, the next pass retries."""
        now = self.clock()
        if self._last_run is not None and now - self._last_run < self.every_s:
            return 0
        self._last_run = now
        try:
            return self.run(now)
        except redis.RedisError as exc:
            log.warning("hourly rollups not updated this pass: %s", exc)
            return 0

    def run(self, now: float) -> int:
        """One pass; returns the number of parts written."""
        window = (hour_of(now) - HOUR_S, hour_of(now))
        # Sessions started since the previous pass's window too: after a long backlog (no
        # housekeeping while behind) they may have started and closed between two passes.
        since = max(min(window[0], self._since or window[0]), now - MAX_LOOKBACK_S)
        active, pending, recent = self._candidates(since)
        if active:
            self.r.zadd(self.keys.rollups_pending, {s: now for s in active}, nx=True)
        sessions = sorted(set(active) | pending | set(recent))
        pipe = self.r.pipeline(transaction=False)
        for session_id in sessions:
            pipe.hmget(self.keys.meta(session_id), _META)
        tasks, finished, finalised = [], [], {}
        for session_id, values in zip(sessions, pipe.execute()):
            meta = dict(zip(_META, values))
            camera, started = meta["camera_id"], _float(meta["started_at"])
            stamp = meta["updated_at"] or ""
            if not (camera and valid_id(camera)) or started is None:
                finished.append(session_id)  # expired or never started: nothing to finalise
            elif meta["status"] == "closed":
                finished.append(session_id)
                finalised[session_id] = stamp
                if self._finalised.get(session_id) != stamp:  # every hour, once per change
                    tasks += [(camera, session_id, started, hour, stamp, None)
                              for hour in self._session_hours(session_id, started, meta)]
            else:  # open: up to now (its future seconds are empty), the last hour seldom
                last_t = int(now - started) + LATE_S
                tasks += [(camera, session_id, started, hour, stamp, last_t) for hour in window
                          if hour >= hour_of(started) and self._due(session_id, hour, stamp,
                                                                    now, hour < window[1])]
        written = self._recompute(tasks, now)
        finished = [s for s in finished if s in pending]
        if finished:
            self.r.zrem(self.keys.rollups_pending, *finished)
        self._finalised = finalised  # sessions closed and still candidates: bounded
        self._computed = {k: v for k, v in self._computed.items() if k[1] >= window[0]}
        self._prune({task[0] for task in tasks}, now)
        self._since = window[0]
        return written

    def _candidates(self, since: float) -> tuple[list[str], set[str], list[str]]:
        pipe = self.r.pipeline(transaction=False)
        pipe.zrange(self.keys.active_sessions, 0, -1)
        pipe.zrange(self.keys.rollups_pending, 0, -1)
        pipe.zrangebyscore(self.keys.sessions, since, "+inf")
        active, pending, recent = pipe.execute()
        return ([s for s in active if valid_id(s)], {s for s in pending if valid_id(s)},
                [s for s in recent if valid_id(s)])

    def _session_hours(self, session_id: str, started: float, meta: dict) -> list[int]:
        """Every hour a closed session covers: up to its last frame's wall time, or its
        summary's duration (video time, for files analysed faster than real time)."""
        ends = [_float(meta["last_seen"]), _float(meta["ended_at"]), started]
        summary = _summary_duration(self.r.get(self.keys.summary(session_id)))
        if summary:
            ends.append(started + summary - 1)
        return hours_between(started, max(e for e in ends if e is not None))[-MAX_FINALISE_HOURS:]

    def _due(self, session_id: str, hour: int, stamp: str, now: float, past: bool) -> bool:
        """An open session's hour needs a recompute: its data moved since the last one (and,
        for the hour just past, that was PAST_HOUR_EVERY_S ago: only late frames land there)."""
        done = self._computed.get((session_id, hour))
        if done is None:
            return True
        return done[0] != stamp and (not past or now - done[1] >= PAST_HOUR_EVERY_S)

    def _recompute(self, tasks: list[tuple], now: float) -> int:
        """Read each (session, hour)'s part, SCRIPTS_PER_ROUND scripts a round trip (each
        loops over up to an hour of seconds in Redis: a round stays well under a second)."""
        commands, reads = [], []  # script_call: a Redis Cluster pipeline refuses pipe.evalsha()
        for camera, session_id, started, hour, _stamp, last_t in tasks:
            span = seconds_in_hour(started, hour)
            if span is None or (last_t is not None and last_t < span[0]):
                continue
            hi = span[1] if last_t is None else min(span[1], last_t)
            commands.append(script_call(
                self._read, [self.keys.buckets(session_id), self.keys.bucket_track_ids(session_id),
                             self.keys.bucket_tracks(session_id)],
                [span[0], hi, HOUR_S + 1, MAX_TRACK_PAIRS, ",".join(PROB_FIELDS)]))
            reads.append((camera, session_id, hour))
        packed_parts = [reply for i in range(0, len(commands), SCRIPTS_PER_ROUND)
                        for reply in run_pipeline(self.r, commands[i:i + SCRIPTS_PER_ROUND])]
        parts = [PartWrite(camera, hour, session_id, parse_rollup(packed))
                 for (camera, session_id, hour), packed in zip(reads, packed_parts)]
        written = self.writer.write(parts)
        self._computed.update({(t[1], t[3]): (t[4], now) for t in tasks})
        return written

    def _prune(self, cameras: set[str], now: float) -> None:
        """Once an hour per camera (HKEYS of up to a year of hours is not for every pass)."""
        due = {c for c in cameras if now - self._pruned.get(c, 0.0) >= PRUNE_EVERY_S}
        if due:
            self._pruned.update(dict.fromkeys(due, now))
            self.writer.prune(due, now)


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _summary_duration(raw: str | None) -> float | None:
    try:
        duration = json.loads(raw).get("duration_s") if raw else None
    except (json.JSONDecodeError, AttributeError):
        return None
    return float(duration) if isinstance(duration, (int, float)) and duration > 0 else None
