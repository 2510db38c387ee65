"""A camera's day and week reports: the period parsing, the numbers added up from a real
Valkey filled by the real aggregator, and `moodstream report --camera` writing each format."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import pypdf
import pytest
import redis

from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS
from moodstream.embedded import free_port
from moodstream.period_report import (ReportError, UnknownCamera, build_period_report,
                                      parse_period, render_period)
from moodstream.redis_keys import RedisKeys
from tests.dashboard.redis_fill import FPS, Filler, face_probs
from tests.moodstream.test_cli_errors import assert_one_clear_line, run_cli
from tests.conftest import redis_namespace

# Yesterday (UTC): the aggregator prunes index members older than its retention, so the
# sessions are seeded in the recent past rather than on a fixed date.
DAY = datetime.now(timezone.utc).date() - timedelta(days=1)
MIDNIGHT = datetime.combine(DAY, datetime.min.time(), timezone.utc).timestamp()
WEEK = "{}-W{:02d}".format(*DAY.isocalendar()[:2])

# (session, camera, start, seconds, people, mood): A and B on DAY in UTC; C just before it;
# D at 03:00 UTC the next day, which is still DAY in New York (UTC-5 in winter, -4 in summer);
# E is another camera's.
SESSIONS = [
    ("pa-a", "cam-p", MIDNIGHT + 9 * 3600, 60, 2, 0.6),
    ("pa-b", "cam-p", MIDNIGHT + 14 * 3600 + 1800, 30, 3, -0.5),
    ("pa-c", "cam-p", MIDNIGHT - 60, 20, 1, 0.9),
    ("pa-d", "cam-p", MIDNIGHT + 27 * 3600, 20, 1, -0.9),
    ("pa-e", "cam-q", MIDNIGHT + 10 * 3600, 40, 2, 0.1),
]


def ground_truth(seconds: int, people: int, mood: float) -> dict[str, float]:
    """What Filler.session feeds the aggregator, counted here independently."""
    frames = faces = 0
    sentiment = 0.0
    emotions = dict.fromkeys(EMOTIONS, 0.0)
    for t in range(seconds):
        for _frame in range(FPS):
            seq = frames
            frames += 1
            if t % 7 == 6:
                continue
            for i in range(people):
                probs = face_probs(max(-1.0, min(1.0, mood + 0.1 * math.sin(seq + i))))
                sentiment += sum(probs[e] * w for e, w in DEFAULT_VALENCE.items())
                faces += 1
                for e in EMOTIONS:
                    emotions[e] += probs[e]
    return {"frames": frames, "faces": faces, "sentiment_sum": sentiment, "people": people,
            "emotions": emotions}


def expected(*names: str) -> dict[str, float]:
    truths = [ground_truth(s, p, m) for n, _c, _t, s, p, m in SESSIONS if n in names]
    faces = sum(t["faces"] for t in truths)
    return {"frames": sum(t["frames"] for t in truths), "faces": faces,
            "people": sum(t["people"] for t in truths),
            "emotions": {e: sum(t["emotions"][e] for t in truths) for e in EMOTIONS},
            "mean_sentiment": sum(t["sentiment_sum"] for t in truths) / faces}


@pytest.fixture(scope="module")
def seeded(redis_server):
    with redis_namespace(redis_server, 13) as (client, prefix, url):
        filler = Filler(client, prefix)
        for name, camera, start, seconds, people, mood in SESSIONS:
            filler.session(camera, name, start, seconds, mood, mood, people=people, end=True)
        yield client, RedisKeys(prefix), {"REDIS_URL": url, "MOODSTREAM_REDIS_PREFIX": prefix}


# ---------------------------------------------------------------- periods

def test_day_and_week_periods_in_utc_and_in_a_time_zone():
    day = parse_period(day="2026-11-30")
    assert (day.start.isoformat(), day.end.isoformat()) == ("2026-11-30T00:00:00+00:00",
                                                           "2026-12-01T00:00:00+00:00")
    assert len(day.bucket_starts()) == 24
    week = parse_period(week="2026-W48")
    assert (week.start.date(), week.end.date()) == (date(2026, 11, 23), date(2026, 11, 30))
    assert len(week.bucket_starts()) == 7
    berlin = parse_period(day="2026-11-30", tz="Europe/Berlin")
    assert berlin.start.astimezone(timezone.utc).hour == 23  # CET midnight is 23:00 UTC


def test_a_day_with_a_clock_change_has_23_or_25_hours():
    assert len(parse_period(day="2026-03-29", tz="Europe/Berlin").bucket_starts()) == 23
    assert len(parse_period(day="2026-10-25", tz="Europe/Berlin").bucket_starts()) == 25


@pytest.mark.parametrize("kwargs, words", [
    ({"day": "2026-13-01"}, "bad day"), ({"day": "30/11/2026"}, "bad day"),
    ({"week": "2026-W54"}, "bad week"), ({"week": "2026-48"}, "bad week"),
    ({"day": "2026-11-30", "tz": "Mars/Olympus"}, "unknown time zone"),
    ({}, "exactly one period"), ({"day": "2026-11-30", "week": "2026-W48"}, "exactly one"),
])
def test_bad_periods_are_one_clear_error(kwargs, words):
    with pytest.raises(ReportError, match=words):
        parse_period(**kwargs)


# ---------------------------------------------------------------- numbers from Redis

def test_day_report_adds_up_the_sessions_that_started_that_day(seeded):
    client, keys, _env = seeded
    report = build_period_report(client, keys, "cam-p", parse_period(day=DAY.isoformat()))
    truth = expected("pa-a", "pa-b")
    assert [s["session_id"] for s in report["sessions"]] == ["pa-a", "pa-b"]
    assert report["session_count"] == 2
    assert report["frames_processed"] == truth["frames"] == 180
    assert report["faces_detected"] == truth["faces"]
    assert report["people"] == truth["people"] == 5
    assert report["mean_sentiment"] == pytest.approx(truth["mean_sentiment"], abs=1e-3)
    for emotion in EMOTIONS:
        assert report["emotion_totals"][emotion] == pytest.approx(truth["emotions"][emotion],
                                                                  abs=0.01)
    assert report["dominant_emotion"] == max(truth["emotions"], key=truth["emotions"].get)


def test_the_timeline_puts_each_second_in_its_hour(seeded):
    client, keys, _env = seeded
    report = build_period_report(client, keys, "cam-p", parse_period(day=DAY.isoformat()))
    hours = {row["start"][11:13]: row for row in report["timeline"]}
    assert len(hours) == 24
    assert hours["09"]["frames"] == 120 and hours["14"]["frames"] == 60
    assert sum(row["frames"] for row in report["timeline"]) == 180
    assert hours["09"]["peak_people"] == 2 and hours["14"]["peak_people"] == 3
    assert hours["09"]["sentiment"] == pytest.approx(
        ground_truth(60, 2, 0.6)["sentiment_sum"] / ground_truth(60, 2, 0.6)["faces"], abs=1e-3)
    assert hours["10"]["sentiment"] is None and hours["10"]["faces"] == 0  # no face: no number


def test_a_time_zone_moves_which_sessions_belong_to_the_day(seeded):
    client, keys, _env = seeded
    report = build_period_report(client, keys, "cam-p",
                                 parse_period(day=DAY.isoformat(), tz="America/New_York"))
    assert [s["session_id"] for s in report["sessions"]] == ["pa-a", "pa-b", "pa-d"]
    assert report["frames_processed"] == expected("pa-a", "pa-b", "pa-d")["frames"]
    assert report["timezone"] == "America/New_York"


def test_week_report_has_one_row_per_day(seeded):
    client, keys, _env = seeded
    report = build_period_report(client, keys, "cam-p", parse_period(week=WEEK))
    week = DAY.isocalendar()[:2]
    inside = [n for n, cam, start, *_ in sorted(SESSIONS, key=lambda s: s[2]) if cam == "cam-p"
              and datetime.fromtimestamp(start, timezone.utc).isocalendar()[:2] == week]
    assert [s["session_id"] for s in report["sessions"]] == inside
    assert len(report["timeline"]) == 7
    assert sum(row["frames"] for row in report["timeline"]) == expected(*inside)["frames"]
    by_day = {row["start"][:10]: row["frames"] for row in report["timeline"]}
    assert by_day[DAY.isoformat()] == 180


def test_a_session_whose_live_keys_expired_counts_through_its_summary(redis_server):
    prefix = f"p{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=12,
                         decode_responses=True)
    try:
        Filler(client, prefix).session("cam-s", "ps-a", MIDNIGHT + 3600, 30, 0.5, 0.5,
                                       end=True)
        keys = RedisKeys(prefix)
        assert client.exists(keys.summary("ps-a")), "the aggregator wrote no summary at close"
        client.delete(*keys.session_keys("ps-a"))  # the buckets' TTL is shorter than the summary's
        report = build_period_report(client, keys, "cam-s", parse_period(day=DAY.isoformat()))
        assert report["session_count"] == 1 and report["frames_processed"] == 60
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


def test_unknown_camera_is_an_error_and_a_quiet_known_one_an_empty_report(seeded):
    client, keys, _env = seeded
    with pytest.raises(UnknownCamera, match="unknown camera 'cam-nope'"):
        build_period_report(client, keys, "cam-nope", parse_period(day=DAY.isoformat()))
    # Known: it was seen lately (the cameras index forgets a camera after the bucket TTL).
    Filler(client, keys.prefix).session("cam-r", "pr-a", time.time() - 30, 5, 0.0, 0.0)
    quiet = build_period_report(client, keys, "cam-r", parse_period(day="2020-01-01"))
    assert quiet["session_count"] == 0 and quiet["mean_sentiment"] is None
    assert all(row["frames"] == 0 for row in quiet["timeline"])
    with pytest.raises(ReportError, match="invalid camera id"):
        build_period_report(client, keys, "../etc", parse_period(day=DAY.isoformat()))


# ---------------------------------------------------------------- the CLI, for cron

def _report(env: dict, *args: str) -> subprocess.CompletedProcess:
    return run_cli("report", *args, **env)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["csv", "json", "html", "pdf"])
def test_cli_writes_a_cameras_day_in_each_format(seeded, tmp_path, suffix):
    _client, _keys, env = seeded
    path = tmp_path / f"day.{suffix}"
    result = _report(env, "--camera", "cam-p", "--day", DAY.isoformat(), "--report", str(path))
    assert result.returncode == 0, result.stderr
    assert f"wrote {path}: 180 frames" in result.stdout and "2 sessions of cam-p" in result.stdout
    if suffix == "csv":
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        assert len(rows) == 24 and sum(int(r["frames"]) for r in rows) == 180
        assert {r["camera_id"] for r in rows} == {"cam-p"}
    elif suffix == "json":
        report = json.loads(path.read_text())
        assert report["frames_processed"] == 180 and report["label"] == DAY.isoformat()
    elif suffix == "html":
        page = path.read_text()
        assert "moodstream camera cam-p" in page and "pa-b" in page and "chart-traffic" in page
    else:
        pdf = pypdf.PdfReader(path)
        text = "\n".join(page.extract_text() for page in pdf.pages)
        assert len(pdf.pages) >= 2
        assert "cam-p" in text and "pa-a" in text and "pa-b" in text
        assert "Frames processed 180" in text
        assert f"Faces detected {expected('pa-a', 'pa-b')['faces']}" in text


@pytest.mark.slow
def test_cli_writes_a_cameras_week_in_a_time_zone(seeded, tmp_path):
    _client, _keys, env = seeded
    path = tmp_path / "week.json"
    result = _report(env, "--camera", "cam-p", "--week", WEEK, "--tz", "Europe/Berlin",
                     "--report", str(path))
    assert result.returncode == 0, result.stderr
    report = json.loads(path.read_text())
    assert report["label"] == WEEK and report["timezone"] == "Europe/Berlin"
    assert len(report["timeline"]) == 7


@pytest.mark.slow
@pytest.mark.parametrize("args, code, words", [
    (("--camera", "cam-nope", "--day", "{day}"), 2, ["unknown camera 'cam-nope'"]),
    (("--camera", "cam-p", "--day", "2026-02-30"), 2, ["bad day '2026-02-30'"]),
    (("--camera", "cam-p", "--week", "2026-W60"), 2, ["bad week"]),
    (("--camera", "cam-p", "--day", "{day}", "--tz", "Nowhere/City"), 2, ["unknown time zone"]),
    (("--camera", "cam-p"), 2, ["--day"]),
    (("pa-a", "--camera", "cam-p", "--day", "{day}"), 2, ["not both"]),
    (("--day", "{day}"), 2, ["name a session"]),
])
def test_cli_bad_input_is_one_line_and_a_non_zero_exit(seeded, tmp_path, args, code, words):
    _client, _keys, env = seeded
    args = [a.format(day=DAY.isoformat()) for a in args]
    result = _report(env, *args, "--report", str(tmp_path / "r.pdf"))
    assert_one_clear_line(result, code, *words)
    assert not (tmp_path / "r.pdf").exists()


@pytest.mark.slow
def test_cli_refuses_an_unwritable_report_path(seeded, tmp_path):
    _client, _keys, env = seeded
    (tmp_path / "file").write_text("")
    result = _report(env, "--camera", "cam-p", "--day", DAY.isoformat(),
                     "--report", str(tmp_path / "file" / "r.pdf"))
    assert_one_clear_line(result, 2, "cannot write the report", "not a directory")


@pytest.mark.slow
def test_cli_says_when_redis_is_unreachable(tmp_path):
    result = _report({"REDIS_URL": f"redis://127.0.0.1:{free_port('127.0.0.1')}/0"},
                     "--camera", "cam-p", "--day", "2026-11-30", "--report",
                     str(tmp_path / "r.pdf"))
    assert_one_clear_line(result, 3, "Redis")
    assert not (tmp_path / "r.pdf").exists()


def test_report_help_names_the_camera_options():
    """`python -m moodstream report --help` documents the camera options for cron users."""
    result = subprocess.run([sys.executable, "-m", "moodstream", "report", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in ("--camera", "--day", "--week", "--tz", ".pdf"):
        assert option in result.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_day_report_reads_sessions_spread_over_a_redis_cluster(tmp_path):
    """Sessions on the three nodes of a real cluster (the sessions' hash tags pick the
    slots): the pipelined camera look-up and each session's report cross slots fine."""
    from moodstream.clients import redis_client
    from moodstream.settings import CommonSettings
    from tests.moodstream.redis_cluster import LocalRedisCluster

    prefix = f"c{uuid.uuid4().hex[:8]}"
    with LocalRedisCluster(3) as cluster:
        client = redis_client(CommonSettings.load(redis_url=cluster.url))
        filler = Filler(client, prefix)
        for hour, session in enumerate(("s1", "s2", "s3")):  # one per node (test_redis_cluster)
            filler.session("door", session, MIDNIGHT + (8 + hour) * 3600, 20, 0.3, 0.3,
                           end=True)
        report = build_period_report(client, RedisKeys(prefix), "door",
                                     parse_period(day=DAY.isoformat()))
        assert [s["session_id"] for s in report["sessions"]] == ["s1", "s2", "s3"]
        assert report["frames_processed"] == 3 * 40
        path = tmp_path / "door.pdf"
        result = _report({"REDIS_URL": cluster.url, "MOODSTREAM_REDIS_PREFIX": prefix},
                         "--camera", "door", "--day", DAY.isoformat(), "--report", str(path))
        assert result.returncode == 0, result.stderr
        text = "\n".join(page.extract_text() for page in pypdf.PdfReader(path).pages)
        assert "Frames processed 120" in text
        client.close()


def test_what_min_people_hides_in_a_session_stays_hidden_in_its_day(redis_server):
    """One session saw 2 people under a camera minimum of 3 (its sentiment is suppressed),
    the other 3: the day counts both sessions' frames but only the second one's moods."""
    prefix = f"p{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=12,
                         decode_responses=True)
    keys = RedisKeys(prefix)
    try:
        filler = Filler(client, prefix)
        filler.session("cam-m", "pm-few", MIDNIGHT + 8 * 3600, 30, -0.8, -0.8, people=2)
        filler.session("cam-m", "pm-ok", MIDNIGHT + 9 * 3600, 30, 0.6, 0.6, people=3)
        for session in ("pm-few", "pm-ok"):
            client.hset(keys.meta(session), "min_people", 3)  # as the aggregator records it
        report = build_period_report(client, keys, "cam-m", parse_period(day=DAY.isoformat()))
        truth = ground_truth(30, 3, 0.6)
        assert report["frames_processed"] == 120 and report["suppressed_sessions"] == 1
        assert report["faces_detected"] == ground_truth(30, 2, -0.8)["faces"] + truth["faces"]
        assert report["mean_sentiment"] == pytest.approx(
            truth["sentiment_sum"] / truth["faces"], abs=1e-3)
        hours = {row["start"][11:13]: row for row in report["timeline"]}
        assert hours["08"]["frames"] == 60 and hours["08"]["faces"] > 0
        assert hours["08"]["sentiment"] is None  # suppressed seconds add no mood
        assert hours["08"]["suppressed"] == "suppressed (fewer than 3 people)"
        assert hours["09"]["sentiment"] == pytest.approx(report["mean_sentiment"], abs=1e-3)
        assert "suppressed" not in hours["09"] and report["min_people"] == 3
        csv_rows = {row["start"][11:13]: row for row in csv.DictReader(
            io.StringIO(render_period(report, "csv")))}
        assert csv_rows["08"]["sentiment"] == "" and int(csv_rows["08"]["faces"]) > 0
        assert float(csv_rows["09"]["sentiment"]) == pytest.approx(hours["09"]["sentiment"])
        assert json.loads(render_period(report, "json"))["timeline"] == report["timeline"]
        week = build_period_report(client, keys, "cam-m", parse_period(
            week="%d-W%02d" % DAY.isocalendar()[:2]))
        day = next(row for row in week["timeline"] if row["faces"])
        assert day["sentiment"] == pytest.approx(hours["09"]["sentiment"], abs=1e-3)
        assert "suppressed" not in day  # the day's rated seconds saw 3 people each
        page = render_period(report, "pdf")
        assert "Sessions hidden (min_people) 1" in "\n".join(
            p.extract_text() for p in pypdf.PdfReader(io.BytesIO(page)).pages)
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()
