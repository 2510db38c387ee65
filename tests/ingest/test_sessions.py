"""Session roll-over: live cameras get a new session on a wall-clock schedule (hourly by
default, per camera in the camera file, or by setting); a file stays one session."""

from __future__ import annotations

import pytest

from ingest.config import IngestSettings, SessionPolicy
from ingest.sessions import SessionTracker
from tests.conftest import VIDEOS, require
from tests.ingest.helpers import MjpegServer, RunningIngest, clip_jpegs, read_topics, wait_until

HOUR = 3600.0


def settings(**kw) -> IngestSettings:
    return IngestSettings.load(kafka_bootstrap_servers="127.0.0.1:1", **kw)


def test_live_sessions_roll_over_on_the_hour_by_default():
    tracker = SessionTracker("door", SessionPolicy(gap_s=30), live=True)
    first = tracker.on_frame(0.0, 10 * HOUR - 1.0).started
    assert tracker.on_frame(0.5, 10 * HOUR - 0.5).started is None
    rollover = tracker.on_frame(1.0, 10 * HOUR)  # 10:00:00 UTC
    assert (rollover.ended, rollover.reason) == (first, "schedule")
    assert rollover.started.start_media_s == 1.0


def test_a_file_is_one_session_whatever_the_schedule():
    tracker = SessionTracker("clip", SessionPolicy(every_s=10), live=False)
    first = tracker.on_frame(0.0, 5.0).started
    # Media time runs on (no gap) while the wall clock crosses many schedule slots.
    assert all(tracker.on_frame(n, 5.0 + n * HOUR).started is None for n in (1, 2, 3))
    assert tracker.finish() == first


def test_zero_or_null_turns_the_schedule_off():
    assert SessionPolicy(every_s=None).every_s == 0  # "every_s: null" in a camera file
    tracker = SessionTracker("door", SessionPolicy(every_s=0), live=True)
    tracker.on_frame(0.0, HOUR - 1)
    assert tracker.on_frame(1.0, HOUR + 1).started is None


def test_schedule_comes_from_the_setting_and_the_camera_file(tmp_path, monkeypatch):
    [cli_camera] = settings(source="rtsp://cam/1", purpose="customer sentiment, door").cameras()
    assert cli_camera.session.every_s == HOUR
    monkeypatch.setenv("MOODSTREAM_INGEST_SESSION_EVERY_S", "900")
    path = tmp_path / "cams.yaml"
    path.write_text("cameras:\n"
                    "  - {id: door, url: 'rtsp://cam/1', purpose: queue}\n"
                    "  - {id: till, url: 'rtsp://cam/2', purpose: till, session: {every_s: 600}}\n"
                    "  - {id: desk, url: 0, purpose: desk, session: {every_s: 0}}\n")
    door, till, desk = settings(config=path).cameras()
    assert (door.session.every_s, till.session.every_s, desk.session.every_s) == (900, 600, 0)
    assert till.session.gap_s == 30  # the setting's gap still applies under the camera's table


@pytest.mark.integration
@pytest.mark.slow
def test_live_camera_rolls_over_on_schedule_and_every_frame_is_counted(kafka_server,
                                                                       unique_prefix):
    from ingest.config import CameraConfig
    camera = MjpegServer(clip_jpegs(require(VIDEOS / "single_face_smile.mp4")), fps=15).start()
    cam = CameraConfig(id="door", url=camera.url, fps=5, session={"every_s": 1.0})
    try:
        with RunningIngest(kafka_server.bootstrap, unique_prefix, [cam]) as ingest:
            counts = ingest.counts("door")
            assert wait_until(lambda: counts.published >= 12, 20)  # spans >= 2 one-second slots
    finally:
        camera.stop()

    def every_session_ended(got):
        starts = [e for e in got.control if e.type == "session_start"]
        return len(starts) >= 2 and got.complete(len(starts))

    got = read_topics(kafka_server.bootstrap, unique_prefix, every_session_ended)
    ends = sorted(got.ends(), key=lambda e: e.ts)
    assert len(ends) >= 2
    assert [e.reason for e in ends[:-1]] == ["schedule"] * (len(ends) - 1)
    assert ends[-1].reason == "shutdown"
    for end in ends:  # frames land in the session they were counted in, none lost or extra
        frames = [h for _, h, _ in got.frames if h.session_id == end.session_id]
        assert end.frames_published == len(frames)
        assert sorted(h.seq for h in frames) == list(range(len(frames)))
    assert sum(e.frames_published for e in ends) == len(got.frames)
