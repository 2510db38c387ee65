"""Hourly rollups per camera: hour arithmetic, the one idempotent write, and the backfill.

A camera-hour's rollup (moodstream.redis_keys: ``rollup_hourly``) is the sum of that hour's
*parts*, one per session that has seconds in the hour. A part is always recomputed from
its source (the session's per-second buckets in the aggregator, its summary's timeline in
the backfill) and SET, never incremented; WRITE_PART stores a part and re-sums the hour
in one atomic script, so a recompute, a redelivered frame, a restart or two writers at
once can never count anything twice. Both keys carry the camera's ``{cam:C}`` hash tag,
so the script stays in one cluster slot.

Times: bucket second t of a session lies at wall time started_at + t (video time for
files, as everywhere in the dashboard); hours are UTC, H = the hour's start in epoch s.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

import redis

from moodstream.emotions import EMOTIONS
from moodstream.clients import run_pipeline, script_call
from moodstream.redis_keys import ROLLUP_FIELDS, RedisKeys, pack_rollup, parse_rollup
from moodstream.schemas import valid_id

log = logging.getLogger(__name__)

HOUR_S = 3600
DAY_S = 86400
DEFAULT_ROLLUP_TTL_S = 400 * DAY_S
PEOPLE = ROLLUP_FIELDS.index("people")

# Sums packed rollups (a Lua table of strings) field by field; nil when there are none.
_SUM = """
local function sum_packed(rows)
  local sums, n = {}, 0
  for _, packed in ipairs(rows) do
    if packed then
      local i = 0
      for value in string.gmatch(packed, '[^,]+') do
        i = i + 1
        sums[i] = (sums[i] or 0) + (tonumber(value) or 0)
      end
      n = n + 1
    end
  end
  if n == 0 then return nil end
  local out = {}
  for i = 1, #sums do out[i] = string.format('%.10g', sums[i]) end
  return table.concat(out, ',')
end
"""

# KEYS: parts hash of (camera, hour), the camera's hourly and daily hashes (one slot: the
# camera's hash tag). ARGV: hour, session, packed part ("" = the session has nothing in
# this hour: drop its part), parts TTL, rollup TTL, "nx" to keep an existing part (the
# backfill never replaces what the buckets gave). Re-sums the hour from its parts and the
# day from its hours, and SETs both (a sum with nothing left is deleted).
WRITE_PART = _SUM + """
local hour, session, part = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local parts_ttl, rollup_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
if part == '' then
  redis.call('HDEL', KEYS[1], session)
elseif ARGV[6] == 'nx' then
  redis.call('HSETNX', KEYS[1], session, part)
else
  redis.call('HSET', KEYS[1], session, part)
end
local function set_or_drop(key, field, packed)
  if packed then redis.call('HSET', key, field, packed) else redis.call('HDEL', key, field) end
end
set_or_drop(KEYS[2], hour, sum_packed(redis.call('HVALS', KEYS[1])))
local day, hours = hour - hour % 86400, {}
for h = 0, 23 do hours[h + 1] = day + h * 3600 end
set_or_drop(KEYS[3], day, sum_packed(redis.call('HMGET', KEYS[2], unpack(hours))))
if parts_ttl > 0 then redis.call('EXPIRE', KEYS[1], parts_ttl) end
if rollup_ttl > 0 then
  redis.call('EXPIRE', KEYS[2], rollup_ttl)
  redis.call('EXPIRE', KEYS[3], rollup_ttl)
end
return 1
"""

def sum_rollups(packed: Iterable[str | None]) -> list[float] | None:
    """Field-wise sum of packed rollups; None when there is none."""
    rows = [values for values in map(parse_rollup, packed) if values]
    return [sum(column) for column in zip(*rows)] if rows else None


def _set_or_drop(pipe, key: str, field: int, values: list[float] | None) -> None:
    if values:
        pipe.hset(key, field, pack_rollup(values))
    else:
        pipe.hdel(key, field)


def hour_of(ts: float) -> int:
    return int(math.floor(ts / HOUR_S)) * HOUR_S


def seconds_in_hour(started_at: float, hour: int) -> tuple[int, int] | None:
    """The bucket seconds t (inclusive range) of a session started at started_at whose wall
    time started_at + t falls in [hour, hour + 1 h); None when none does."""
    lo = max(0, math.ceil(hour - started_at))
    hi = math.ceil(hour + HOUR_S - started_at) - 1
    return (lo, hi) if hi >= lo else None


def hours_between(first_ts: float, last_ts: float) -> list[int]:
    """Every hour start from the one holding first_ts to the one holding last_ts."""
    return list(range(hour_of(first_ts), hour_of(last_ts) + 1, HOUR_S))


@dataclass(frozen=True)
class PartWrite:
    camera_id: str
    hour: int
    session_id: str
    values: list[float] | None  # ROLLUP_FIELDS order; None or no frames = drop the part


class RollupWriter:
    """Writes parts and the sums of their hours (WRITE_PART), one pipelined round per batch."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, rollup_ttl_s: int,
                 parts_ttl_s: int):
        self.r, self.keys = client, keys
        self.rollup_ttl_s, self.parts_ttl_s = rollup_ttl_s, parts_ttl_s
        self._write = client.register_script(WRITE_PART)

    def write(self, parts: Iterable[PartWrite], keep_existing: bool = False) -> int:
        """Store each part, re-sum its camera's hour and day, then the site's; returns how
        many parts were written."""
        parts = list(parts)
        if not parts:
            return 0
        commands = []  # script_call: a Redis Cluster pipeline refuses pipe.evalsha()
        for p in parts:
            packed = pack_rollup(p.values) if p.values and p.values[0] > 0 else ""
            commands.append(script_call(
                self._write, [self.keys.rollup_parts(p.camera_id, p.hour),
                              self.keys.rollup_hourly(p.camera_id),
                              self.keys.rollup_daily(p.camera_id)],
                [p.hour, p.session_id, packed, self.parts_ttl_s, self.rollup_ttl_s,
                 "nx" if keep_existing else ""]))
        cameras = {p.camera_id for p in parts}
        commands.append(lambda pipe: pipe.sadd(self.keys.rollup_cameras, *cameras))
        run_pipeline(self.r, commands)
        self.refresh_site({p.hour for p in parts})
        return len(parts)

    def refresh_site(self, hours: Iterable[int]) -> None:
        """SET the site's hours (sum over cameras) and their days (sum of the site's hours).

        Summed client-side: cameras lie in different cluster slots. Two writers at once can
        leave an hour one write behind; the next write of that hour puts it right."""
        hours = sorted(set(hours))
        cameras = sorted(self.r.smembers(self.keys.rollup_cameras))
        pipe = self.r.pipeline(transaction=False)
        for camera in cameras:
            pipe.hmget(self.keys.rollup_hourly(camera), hours)
        per_camera = pipe.execute()
        site_hourly, site_daily = self.keys.rollup_site("hourly"), self.keys.rollup_site("daily")
        days = sorted({hour - hour % DAY_S for hour in hours})
        pipe = self.r.pipeline(transaction=False)
        for i, hour in enumerate(hours):
            _set_or_drop(pipe, site_hourly, hour, sum_rollups(row[i] for row in per_camera))
        for day in days:
            pipe.hmget(site_hourly, list(range(day, day + DAY_S, HOUR_S)))
        daily = pipe.execute()[len(hours):]
        pipe = self.r.pipeline(transaction=False)
        for day, packed in zip(days, daily):
            _set_or_drop(pipe, site_daily, day, sum_rollups(packed))
        if self.rollup_ttl_s:
            for key in (site_hourly, site_daily, self.keys.rollup_cameras):
                pipe.expire(key, self.rollup_ttl_s)
        pipe.execute()

    def prune(self, cameras: Iterable[str], now: float) -> int:
        """Drop the cameras' and the site's hours and days older than the rollup TTL (a
        key's own TTL only ends a camera that stopped writing)."""
        if not self.rollup_ttl_s:
            return 0
        keys = [self.keys.rollup_site("hourly"), self.keys.rollup_site("daily")]
        for camera in cameras:
            keys += [self.keys.rollup_hourly(camera), self.keys.rollup_daily(camera)]
        return sum(self._prune_key(key, now - self.rollup_ttl_s) for key in keys)

    def _prune_key(self, key: str, cutoff: float) -> int:
        old = [h for h in self.r.hkeys(key) if not h.isdigit() or int(h) < cutoff]
        return self.r.hdel(key, *old) if old else 0


# ---------------------------------------------------------------- from summaries

def parts_from_summary(summary: Mapping[str, Any]) -> dict[int, list[float]]:
    """A session summary (reports.build_report) -> its parts by hour, from its timeline.

    A summary keeps per-second means and per-second distinct tracks, not track ids, so
    sums are rebuilt as mean x faces, and people per hour is the session's people when the
    session lies in one hour, else the most people seen in one second of that hour (a
    lower bound; the aggregator's parts, from track ids, are exact)."""
    started = _epoch(summary.get("started_at"))
    timeline = summary.get("timeline")
    if started is None or not isinstance(timeline, list):
        return {}
    out: dict[int, list[float]] = {}
    for row in timeline:
        if not isinstance(row, dict) or not isinstance(row.get("t"), (int, float)):
            continue
        values = out.setdefault(hour_of(started + row["t"]), [0.0] * len(ROLLUP_FIELDS))
        _add_second(values, row)
    if len(out) == 1:
        only = next(iter(out.values()))
        only[PEOPLE] = max(only[PEOPLE], float(_number(summary.get("people"))))
    return out


def _add_second(values: list[float], row: Mapping[str, Any]) -> None:
    faces = _number(row.get("faces"))
    emotions = row.get("emotions") if isinstance(row.get("emotions"), dict) else {}
    values[0] += _number(row.get("frames"))
    values[1] += faces
    values[2] += _number(row.get("sentiment")) * faces
    values[PEOPLE] = max(values[PEOPLE], _number(row.get("people")))
    for i, emotion in enumerate(EMOTIONS):
        values[PEOPLE + 1 + i] += _number(emotions.get(emotion)) * faces


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def _epoch(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp() if iso else None
    except ValueError:
        return None


def backfill(client: redis.Redis, keys: RedisKeys, rollup_ttl_s: int,
             parts_ttl_s: int) -> dict[str, int]:
    """Rebuild rollups from every session summary that remains. Idempotent: parts are SET
    (never added), and a part the aggregator already wrote from the buckets is kept."""
    writer, stats = RollupWriter(client, keys, rollup_ttl_s, parts_ttl_s), dict(
        sessions=0, parts=0, skipped=0)
    session_ids = [s for s in client.zrange(keys.sessions, 0, -1) if valid_id(s)]
    for start in range(0, len(session_ids), 200):
        chunk = session_ids[start:start + 200]
        pipe, writes = client.pipeline(transaction=False), []
        for session_id in chunk:  # GETs, not MGET: summaries lie in different cluster slots
            pipe.get(keys.summary(session_id))
        for session_id, raw in zip(chunk, pipe.execute()):
            summary = _load(raw)
            camera = summary.get("camera_id") if summary else None
            if not (isinstance(camera, str) and valid_id(camera)):
                stats["skipped"] += raw is not None
                continue
            stats["sessions"] += 1
            writes += [PartWrite(camera, hour, session_id, values)
                       for hour, values in parts_from_summary(summary).items() if values[0] > 0]
        stats["parts"] += writer.write(writes, keep_existing=True)
    return stats


def _load(raw: str | None) -> dict | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
