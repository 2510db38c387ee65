"""The Redis data model: the one place that names keys and fields.

The aggregator writes these keys; the dashboard and the report exporter read them.
Every key starts with the prefix (default ``ms``) so one Redis can host several
deployments. Ids are validated (schemas.valid_id) before they reach a key.

Redis Cluster: a Lua script or multi-key command may only touch keys of one hash slot,
and a key's slot is that of its hash tag, the text between its first ``{`` and the next
``}``. So every key of a session carries the tag ``{sess:S}`` and every key of a camera
``{cam:C}``: each script works on one session or one camera. The cross-session keys
(sessions, sessions:active, cameras, alerts:open, workers, alert_thresholds, the rollup
indexes and site totals) carry no tag, so they spread over the nodes; each is written by
plain commands of its own, pipelined without MULTI, never inside a script with a session
or camera key (aggregator.store says how that stays exactly-once). A prefix must not
contain ``{`` or ``}`` (it would become every key's tag). Ids cannot (valid_id).

Per session ``S`` of camera ``C``::

    {p}:sessions                 ZSET  member S, score = started_at (epoch s)   session index
    {p}:sessions:active          ZSET  member S, score = updated_at, for sessions not yet
                                       closed (the aggregator's idle/end-grace timer)
    {p}:session:{sess:S}:meta    HASH  camera_id, source, status (open|ending|closed),
                                       started_at, ended_at, last_seen, expected_frames,
                                       end_reason, updated_at (aggregator wall clock of
                                       the last write; drives the idle timeout), valence
                                       (JSON weights the sentiment sums were made with),
                                       stale_frames (live frames the detector skipped for
                                       being older than its --max-lag-s), purpose, notice
                                       (1|0) and min_people of the camera at session start
    {p}:session:{sess:S}:totals  HASH  frames (analysed), skipped_frames (the detector
                                       dead-lettered or skipped them as stale: handled,
                                       no faces),
                                       frames_with_faces, faces, excluded_faces,
                                       sentiment_sum, p:<emotion> (probability sums)
    {p}:session:{sess:S}:buckets HASH  per-second buckets, field "<t>|<name>" with name in
                                       frames, faces, sentiment_sum, p:<emotion>;
                                       t = floor(offset_s) (video time for files)
    {p}:session:{sess:S}:tracks  SET   distinct track ids seen (people counted)
    {p}:session:{sess:S}:bucket_tracks
                                 HASH  "<t>" -> number of distinct tracks in second t
    {p}:session:{sess:S}:bucket_track_ids
                                 SET   "<t>|<track_id>" pairs already counted in
                                       bucket_tracks (makes that count distinct)
    {p}:session:{sess:S}:seen:R
                                 BITMAP bit seq set once frame (S, run R, seq) is applied:
                                       the exactly-once guard. One per ingest run R
                                       (seq restarts at 0 in every run); seq <=
                                       schemas.MAX_SEQ keeps one bitmap <= 8 MiB
                                       (~54 KB per camera-day at 5 fps)
    {p}:session:{sess:S}:alerts  LIST  alert records (JSON), newest last
    {p}:session:{sess:S}:summary STRING  JSON summary written when the session closes;
                                       may outlive the buckets (separate TTL). It is
                                       reports.build_report() at close time.

Per camera::

    {p}:cameras                  ZSET  member C, score = last_seen (capture_ts)
    {p}:camera:{cam:C}:live      HASH  session_id, last_seen, sentiment (EMA), faces,
                                       people, dominant, p:<emotion> (EMA), alert
                                       (open|"" ), status, capture_ts (of the last applied
                                       frame), offset_s, applied_at (aggregator wall clock
                                       when that frame reached Redis: capture->visible
                                       latency = applied_at - capture_ts), purpose, notice
                                       (1|0), min_people (camera file; moodstream.suppression)
    {p}:alerts:open              HASH  C -> alert JSON, for cameras with an open alert
    {p}:camera:{cam:C}:alert_acks HASH alert id -> acknowledgement JSON {alert_id,
                                       session_id, by, at, note}; written by the dashboard
                                       (one per alert, a later one replaces it; note <=
                                       500 chars), TTL refreshed on each acknowledgement
    {p}:alert_thresholds         HASH  C -> JSON {threshold, resolve_threshold,
                                       min_duration_s, updated_by, updated_at}: an admin's
                                       per-camera alert thresholds (moodstream.
                                       alert_thresholds); configuration, so no TTL. The
                                       aggregator re-reads it every few seconds; a camera
                                       without a valid entry keeps the aggregator's defaults

Hourly rollups per camera (``H`` = the hour's start, epoch seconds, a multiple of 3600; the
``{cam:C}`` hash tag keeps a camera's rollup keys in one cluster slot)::

    {p}:camera:{cam:C}:rollup:hourly
                                 HASH  "<H>" -> packed rollup of camera C in hour H: the
                                       ROLLUP_FIELDS (frames, faces, sentiment_sum, people
                                       = distinct tracks, p:<emotion> sums) as one
                                       comma-separated string (pack_rollup/parse_rollup);
                                       the sum of that hour's parts. TTL the rollup TTL
                                       (default 400 days), refreshed on write; fields older
                                       than it are pruned by the aggregator
    {p}:camera:{cam:C}:rollup:daily
                                 HASH  "<D>" (the UTC day's start) -> packed sum of the
                                       day's hourly rollups (people: summed per hour),
                                       re-summed with every write of one of its hours
    {p}:camera:{cam:C}:rollup:parts:H
                                 HASH  session S -> packed rollup of S's seconds in hour H
                                       (a part). Parts are recomputed and SET, never
                                       incremented, so a recompute, a redelivery or a
                                       restart cannot count twice; TTL the summary TTL
    {p}:rollup:cameras           SET   cameras that have rollups (the cameras index is
                                       pruned after the bucket TTL; rollups live longer)
    {p}:rollup:site:hourly       HASH  "<H>" -> packed sum over every camera of hour H,
    {p}:rollup:site:daily        HASH  "<D>" -> of day D: recomputed (SET) after each write
                                       of one of its camera-hours; what History's "all
                                       cameras" view reads (one key instead of one a camera)
    {p}:rollups:pending          ZSET  sessions seen open by the rollup writer, score = when
                                       first seen; a member whose session has closed gets
                                       every hour it covers finalised, then leaves the set

Launcher (``moodstream demo`` / ``analyze``)::

    {p}:workers                  HASH  worker or embedded server name -> JSON {name, kind,
                                       pid, restarts, last_exit, state, updated_at}; TTL
                                       30 s, refreshed each second while the launcher runs

Retention (every key has a TTL, refreshed on each write, when the TTLs are non-zero):
the bucket TTL on every key of session_keys(), on each run's seen bitmap, on camera
live hashes and on the cameras, active-sessions and alerts:open keys; the summary has
its own, usually longer, TTL, and the sessions index the longer of the two. Members are
pruned too: sessions whose data and summary expired, cameras not seen for the bucket
TTL, open alerts whose session is closed or gone. A run's seen bitmap expires one
bucket TTL after that run's last frame, so a redelivery older than that (beyond Kafka's
default 7-day retention) would count again.

Alert records (in the session's alerts list and alerts:open) are JSON objects with id,
camera_id, session_id, status (open|resolved), opened_at/resolved_at (epoch s),
opened_offset_s/resolved_offset_s (session time), threshold, window_s, sentiment (window
mean when opened), worst (lowest window mean while open), index (position in the alerts
list), resolved_because (cleared, session_changed, session_closed, camera_idle).
"""

from __future__ import annotations

from dataclasses import dataclass

from moodstream.emotions import EMOTIONS

PROB_FIELDS = tuple(f"p:{e}" for e in EMOTIONS)
BUCKET_NAMES = ("frames", "faces", "sentiment_sum", *PROB_FIELDS)
# The numbers of one camera-hour rollup (and of a part), in their packed order.
ROLLUP_FIELDS = ("frames", "faces", "sentiment_sum", "people", *PROB_FIELDS)
SESSION_STATUSES = ("open", "ending", "closed")


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "ms"

    # --- index keys ---
    @property
    def sessions(self) -> str:
        return f"{self.prefix}:sessions"

    @property
    def cameras(self) -> str:
        return f"{self.prefix}:cameras"

    @property
    def active_sessions(self) -> str:
        return f"{self.prefix}:sessions:active"

    @property
    def open_alerts(self) -> str:
        return f"{self.prefix}:alerts:open"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    # --- per session ---
    def _session(self, session_id: str, part: str) -> str:
        # {sess:S}: every key of the session hashes to one Redis Cluster slot.
        return f"{self.prefix}:session:{{sess:{session_id}}}:{part}"

    def meta(self, session_id: str) -> str:
        return self._session(session_id, "meta")

    def totals(self, session_id: str) -> str:
        return self._session(session_id, "totals")

    def buckets(self, session_id: str) -> str:
        return self._session(session_id, "buckets")

    def tracks(self, session_id: str) -> str:
        return self._session(session_id, "tracks")

    def bucket_tracks(self, session_id: str) -> str:
        return self._session(session_id, "bucket_tracks")

    def bucket_track_ids(self, session_id: str) -> str:
        return self._session(session_id, "bucket_track_ids")

    def seen(self, session_id: str, run_id: str) -> str:
        """The dedupe bitmap of one ingest run of the session (bit = seq)."""
        return self._session(session_id, f"seen:{run_id}")

    def alerts(self, session_id: str) -> str:
        return self._session(session_id, "alerts")

    def summary(self, session_id: str) -> str:
        return self._session(session_id, "summary")

    def session_keys(self, session_id: str) -> list[str]:
        """The session's fixed keys (the seen bitmaps are one per run, named by seen())."""
        return [self.meta(session_id), self.totals(session_id), self.buckets(session_id),
                self.tracks(session_id), self.bucket_tracks(session_id),
                self.alerts(session_id), self.bucket_track_ids(session_id)]

    # --- per camera ---
    def _camera(self, camera_id: str, part: str) -> str:
        # {cam:C}: every key of the camera hashes to one Redis Cluster slot.
        return f"{self.prefix}:camera:{{cam:{camera_id}}}:{part}"

    def camera_live(self, camera_id: str) -> str:
        return self._camera(camera_id, "live")

    def alert_acks(self, camera_id: str) -> str:
        """Acknowledgements of the camera's alerts ({cam:C}: a Redis Cluster hash tag)."""
        return self._camera(camera_id, "alert_acks")

    @property
    def alert_thresholds(self) -> str:
        return f"{self.prefix}:alert_thresholds"

    # --- hourly rollups (aggregator.rollups, moodstream.rollups) ---
    def rollup_hourly(self, camera_id: str) -> str:
        return self._camera(camera_id, "rollup:hourly")

    def rollup_daily(self, camera_id: str) -> str:
        return self._camera(camera_id, "rollup:daily")

    def rollup_parts(self, camera_id: str, hour: int) -> str:
        return self._camera(camera_id, f"rollup:parts:{hour}")

    @property
    def rollup_cameras(self) -> str:
        return f"{self.prefix}:rollup:cameras"

    def rollup_site(self, period: str) -> str:
        """The site's (every camera's) rollups, period "hourly" or "daily"."""
        return f"{self.prefix}:rollup:site:{period}"

    @property
    def rollups_pending(self) -> str:
        return f"{self.prefix}:rollups:pending"


def bucket_field(second: int, name: str) -> str:
    return f"{second}|{name}"


def parse_buckets(raw: dict[str, str]) -> dict[int, dict[str, float]]:
    """HGETALL of a buckets hash -> {second: {name: value}}, seconds ascending."""
    out: dict[int, dict[str, float]] = {}
    for field, value in raw.items():
        second, _, name = field.partition("|")
        try:
            out.setdefault(int(second), {})[name] = float(value)
        except ValueError:
            continue
    return dict(sorted(out.items()))


def pack_rollup(values) -> str:
    """ROLLUP_FIELDS' numbers -> the stored string ("12,10,3.5,2,0.1,...")."""
    return ",".join(format(float(v), ".10g") for v in values)


def parse_rollup(packed: str | None) -> list[float] | None:
    """A stored rollup or part -> its ROLLUP_FIELDS numbers; None when absent or malformed."""
    if not packed:
        return None
    try:
        values = [float(v) for v in packed.split(",")]
    except ValueError:
        return None
    return values if len(values) == len(ROLLUP_FIELDS) else None
