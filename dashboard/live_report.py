"""An open session's report for its drill-down page, read incrementally.

moodstream.reports.build_report reads a session's whole buckets hash (HGETALL): an hour of
one live session is some 36,000 fields, and parsing that reply cost the drill-down most of
its 213 ms a refresh (benchmarks/RESULTS.md). The shared reader (DashboardData.shared_report)
reads an open session here instead: its seconds up to the newest applied frame, packed
inside Redis by SECONDS_SCRIPT, and only those not settled yet (dashboard.settled_seconds:
the last SETTLE_S seconds behind that frame, plus what is new) once it has read them once.
The report is assembled by the same code as build_report (reports.timeline_entry,
reports.assemble_report), so page and download show the same numbers.

Which seconds to read: up to the newest applied one, taken as the larger of the camera's
live `offset_s` (while its live hash is on this session: the aggregator moves it with every
newer frame) and the wall time since the session started at its newest frame (`last_seen`
- `started_at`: a live camera's session time), plus PROBE_S more seconds, so a frame that
runs ahead of both is read too. Any other case (an ending or closed session, no newest
second, a span too long to walk) is read in full by build_report.
"""

from __future__ import annotations

from typing import Any

import redis

from dashboard.redis_values import _float, _timestamp
from dashboard.settled_seconds import SettledSeconds
from moodstream.clients import run_pipeline, script_call
from moodstream.redis_keys import BUCKET_NAMES, RedisKeys
from moodstream.reports import assemble_report, build_report, timeline_entry
from moodstream.schemas import MAX_OFFSET_S, valid_id

# Read-only: the bucket fields (ARGV[4], comma-separated names) and distinct people of
# each second t in [ARGV[1], ARGV[2]] of one session, packed as "v1,v2,...,people" per
# second joined by ";" (the stored strings as they are, "" for an absent field; a second
# without frames is ""). The range comes from Redis data (offset_s), so it is checked
# first: whole numbers, 0 <= lo <= hi <= ARGV[5], at most ARGV[3] seconds (a double as
# large as 1e17 would never step past itself: an endless loop); else it returns "".
SECONDS_SCRIPT = """
local lo, hi, max_span = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_t = tonumber(ARGV[5])
if not (lo and hi and max_t and lo >= 0 and hi >= lo and hi <= max_t and hi - lo < max_span
        and math.floor(lo) == lo and math.floor(hi) == hi) then
  return ''
end
local names = {}
for name in string.gmatch(ARGV[4], '[^,]+') do names[#names + 1] = name end
local out, fields = {}, {}
for t = lo, hi do
  for i, name in ipairs(names) do fields[i] = t .. '|' .. name end
  local v = redis.call('HMGET', KEYS[1], unpack(fields))
  local row, any = {}, false
  for i = 1, #names do
    row[i] = v[i] or ''  -- an absent field is false in Lua
    if v[i] then any = true end
  end
  if any then
    row[#names + 1] = redis.call('HGET', KEYS[2], tostring(t)) or ''
    out[#out + 1] = table.concat(row, ',')
  else
    out[#out + 1] = ''
  end
end
return table.concat(out, ';')
"""
CHUNK_S = 3600  # seconds one script call walks: a few ms of Redis time at most
PROBE_S = 60  # seconds read past the newest known one (empty ones cost a nil HMGET)
MAX_WALK_S = 6 * 3600  # a longer open session is read in full (HGETALL scales with data)
SESSIONS_KEPT = 16  # open sessions whose settled seconds are kept between ticks

Item = tuple[int, dict[str, Any] | None]  # (second, its timeline entry; None = no frames)


class LiveReports:
    def __init__(self, client: redis.Redis, keys: RedisKeys):
        self.client, self.keys = client, keys
        self._script = client.register_script(SECONDS_SCRIPT)
        self._settled = SettledSeconds(max_kept=SESSIONS_KEPT)

    def report(self, session_id: str) -> dict[str, Any]:
        """The session's report, as build_report gives it; Redis errors propagate."""
        if not valid_id(session_id):
            return build_report(self.client, self.keys, session_id)  # raises ReportError
        meta = self.client.hgetall(self.keys.meta(session_id))
        newest = self._newest_second(session_id, meta)
        if newest is None:
            return build_report(self.client, self.keys, session_id)
        # What settles is counted from the newest known second; the read goes PROBE_S past it.
        span, key = range(0, newest + 1), meta.get("started_at")
        first = self._settled.first_unread(session_id, key, span)
        stop = newest + 1 + PROBE_S
        k = self.keys
        replies = run_pipeline(self.client, [
            lambda p: p.hgetall(k.totals(session_id)),
            lambda p: p.lrange(k.alerts(session_id), 0, -1),
            lambda p: p.scard(k.tracks(session_id)),
            *(script_call(self._script, [k.buckets(session_id), k.bucket_tracks(session_id)],
                          [lo, min(lo + CHUNK_S, stop) - 1, CHUNK_S + 1,
                           ",".join(BUCKET_NAMES), int(MAX_OFFSET_S)])
              for lo in range(first, stop, CHUNK_S))])
        totals, alerts, people, *packed = replies
        fresh = _items(range(first, stop), ";".join(packed))
        items = self._settled.merge(session_id, key, span, fresh)
        timeline = [entry for _t, entry in items if entry is not None]
        return assemble_report(session_id, meta, totals, alerts, people, timeline)

    def _newest_second(self, session_id: str, meta: dict[str, str]) -> int | None:
        """The newest applied second of an open session, as far as Redis tells; None when
        it does not (or the session is not open)."""
        if not meta or meta.get("status") != "open" or not valid_id(meta.get("camera_id")):
            return None
        current, offset = self.client.hmget(self.keys.camera_live(meta["camera_id"]),
                                            "session_id", "offset_s")
        started, last_seen = _timestamp(meta.get("started_at")), _timestamp(meta.get("last_seen"))
        known = [_float(offset) if current == session_id else None,
                 last_seen - started if started is not None and last_seen is not None else None]
        known = [int(t) for t in known if t is not None and t >= 0]
        return max(known) if known and max(known) <= MAX_WALK_S else None


def _items(seconds: range, packed: str) -> list[Item]:
    """SECONDS_SCRIPT's rows, one per second read -> (t, timeline entry or None)."""
    out: list[Item] = []
    for t, row in zip(seconds, packed.split(";")):
        if not row:
            out.append((t, None))
            continue
        values = row.split(",")
        bucket = {}
        for name, value in zip(BUCKET_NAMES, values):
            try:
                bucket[name] = float(value)
            except ValueError:  # absent ("") or not a number: as parse_buckets skips it
                continue
        out.append((t, timeline_entry(t, bucket, values[-1] or None)))
    return out
