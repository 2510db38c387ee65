"""`moodstream analyze` / `report` through the real distributed path.

ingest -> Tansu -> detector -> Tansu -> aggregator -> Valkey, each a separate process,
exactly as a user runs it. The proof uses the real shared clips.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import cv2
import pytest

from moodstream.emotions import EMOTIONS
from tests.conftest import VIDEOS, require
from tests.moodstream.proc_utils import processes_with_marker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def moodstream(*args: str, env: dict, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moodstream", *args], env=env, timeout=timeout,
                          capture_output=True, text=True)


def video_facts(path: Path) -> tuple[int, float]:
    """Frames that actually decode (container counts can overstate), last frame's media time."""
    cap = cv2.VideoCapture(str(path))
    frames, last_ms = 0, 0.0
    while cap.grab():
        frames += 1
        last_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    cap.release()
    return frames, last_ms / 1000


def check_report_shape(report: dict, video: Path) -> None:
    frames, last_frame_s = video_facts(video)
    for key in ("session_id", "camera_id", "source", "started_at", "ended_at", "frames_processed",
                "frames_with_faces", "faces_detected", "emotion_totals", "dominant_emotion",
                "mean_sentiment", "timeline"):
        assert key in report, key
    assert report["frames_processed"] == frames, "every frame read must be processed once"
    assert report["source"].endswith(video.name)
    assert set(report["emotion_totals"]) == set(EMOTIONS)
    # one entry per second of video time, up to the second holding the last frame
    assert [e["t"] for e in report["timeline"]] == list(range(math.floor(last_frame_s) + 1))
    assert sum(e["frames"] for e in report["timeline"]) == frames
    for entry in report["timeline"]:
        assert set(entry) >= {"t", "faces", "sentiment", "emotions"}
        assert set(entry["emotions"]) == set(EMOTIONS)


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory, kafka_server, redis_server):
    """One analyze run of two clips on the session's servers (external-server mode)."""
    out = tmp_path_factory.mktemp("reports")
    prefix = f"e2e{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_server.bootstrap,
               REDIS_URL=redis_server.url, MOODSTREAM_TOPIC_PREFIX=prefix,
               MOODSTREAM_REDIS_PREFIX=prefix)
    smile, empty = require(VIDEOS / "single_face_smile.mp4"), require(VIDEOS / "no_face.mp4")
    result = moodstream("analyze", str(smile), str(empty), "--report", str(out / "r.json"), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return env, out, result, smile, empty


def test_single_face_clip_gives_a_full_report(analyzed):
    _env, out, result, smile, _ = analyzed
    report = json.loads((out / "r-single_face_smile.json").read_text())
    check_report_shape(report, smile)
    assert report["faces_detected"] > 0
    assert report["frames_with_faces"] >= 0.8 * report["frames_processed"]
    total = sum(report["emotion_totals"].values())
    assert total == pytest.approx(report["faces_detected"], rel=1e-3)  # probabilities sum to 1
    assert report["dominant_emotion"] in EMOTIONS
    assert -1.0 <= report["mean_sentiment"] <= 1.0
    assert "wrote" in result.stdout and "r-single_face_smile.json" in result.stdout


def test_clip_without_faces_still_gives_a_valid_report(analyzed):
    _env, out, _result, _, empty = analyzed
    report = json.loads((out / "r-no_face.json").read_text())
    check_report_shape(report, empty)
    assert report["faces_detected"] == 0 and report["frames_with_faces"] == 0
    assert report["dominant_emotion"] is None and report["mean_sentiment"] is None
    assert all(e["faces"] == 0 and e["sentiment"] is None for e in report["timeline"])


def test_report_command_exports_the_same_session_as_csv(analyzed, tmp_path):
    env, out, _result, _, _ = analyzed
    report = json.loads((out / "r-single_face_smile.json").read_text())
    result = moodstream("report", report["session_id"], "--report", str(tmp_path / "t.csv"), env=env)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [int(r["t"]) for r in rows] == [e["t"] for e in report["timeline"]]
    assert sum(int(r["faces"]) for r in rows) == report["faces_detected"]
    listed = moodstream("sessions", env=env)
    assert report["session_id"] in listed.stdout


def test_analyze_on_embedded_servers_leaves_no_processes(tmp_path):
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env["MOODSTREAM_TEST_MARKER"] = marker
    result = moodstream("analyze", str(require(VIDEOS / "no_face.mp4")), "--report",
                        str(tmp_path / "r.csv"), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert rows and all(int(r["faces"]) == 0 for r in rows)
    assert processes_with_marker(marker) == []
