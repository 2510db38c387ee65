"""The e2e benchmark's parsers: GNU time -v reports and analyze's first-detection line."""

from __future__ import annotations

import pytest

from benchmarks.e2e_bench import parse_first_detection, parse_time_v, within

TIME_V = """\
\tCommand being timed: ".venv/bin/moodstream analyze single_face_smile.mp4 --report r.json"
\tUser time (seconds): 3.76
\tSystem time (seconds): 0.57
\tPercent of CPU this job got: 48%
\tElapsed (wall clock) time (h:mm:ss or m:ss): 0:08.87
\tAverage shared text size (kbytes): 0
\tMaximum resident set size (kbytes): 172100
\tMajor (requiring I/O) page faults: 0
\tFile system outputs: 944
\tPage size (bytes): 4096
\tExit status: 0
"""


def test_time_v_fields():
    fields = parse_time_v(TIME_V)
    assert fields["wall_s"] == pytest.approx(8.87)
    assert fields["user_s"] == pytest.approx(3.76)
    assert fields["sys_s"] == pytest.approx(0.57)
    assert fields["max_rss_kb"] == 172100
    assert fields["exit_status"] == 0
    assert fields["signal"] is None


def test_time_v_minutes_and_hours():
    assert parse_time_v(TIME_V.replace("0:08.87", "3:02.50"))["wall_s"] == pytest.approx(182.5)
    assert parse_time_v(TIME_V.replace("0:08.87", "1:02:03"))["wall_s"] == pytest.approx(3723)


def test_time_v_failed_command():
    text = "Command exited with non-zero status 2\n" + TIME_V.replace("Exit status: 0", "Exit status: 2")
    assert parse_time_v(text)["exit_status"] == 2
    killed = "Command terminated by signal 9\n" + TIME_V
    assert parse_time_v(killed)["signal"] == 9


def test_time_v_command_name_with_colons_does_not_confuse():
    text = TIME_V.replace('"', '"x: 1 User time (seconds): 99 ', 1)
    assert parse_time_v(text)["user_s"] == pytest.approx(3.76)


def test_time_v_rejects_other_text():
    with pytest.raises(ValueError, match="not a /usr/bin/time -v report"):
        parse_time_v("wall 10.81\n")


def test_first_detection_line():
    stderr = (
        "2026-11-30 18:20:57,112 INFO moodstream moodstream: started ingest:clip (pid 24375)\n"
        "2026-11-30 18:21:04,836 INFO moodstream moodstream: first detection applied in Redis "
        "9.28 s after launch\n"
        "wrote r.json: 72 frames, 72 with faces, 72 faces\n")
    assert parse_first_detection(stderr) == pytest.approx(9.28)
    assert parse_first_detection("first detection applied in Redis 1 s after launch") == 1.0


def test_first_detection_absent():
    assert parse_first_detection("moodstream: error: video not found: x.mp4\n") is None
    assert parse_first_detection("") is None


def test_face_tolerance():
    assert within(653, 653) and within(640, 653) and not within(639, 653)
    assert within(0, 0) and not within(1, 0)


def test_new_bits_of_a_redis_bitmap():
    from benchmarks.latency_bench import new_bits
    assert new_bits(b"", b"\x80") == [0]  # SETBIT k 0 1
    assert new_bits(b"\x80", b"\xc0\x01") == [1, 15]
    assert new_bits(b"\xff", b"\xff") == []
