"""Still images and camera purpose through `python -m ingest`: real broker, real files."""

from __future__ import annotations

import logging

import pytest

from ingest.config import CameraConfig
from ingest.service import warn_missing_notices
from moodstream.stills import list_stills, read_still, StillError
from tests.ingest.helpers import read_topics
from tests.ingest.stills_data import make_stills
from tests.ingest.test_cli import assert_one_clean_line, run_ingest


def test_a_folder_lists_its_images_in_name_order_and_reads_them(tmp_path):
    files = make_stills(tmp_path)
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_stills(tmp_path)] == ["a-smile.jpg", "b-smile.png",
                                                        "c-empty.webp", "d-broken.jpg"]
    assert read_still(files["c-empty.webp"]).shape == (540, 960, 3)
    with pytest.raises(StillError, match="not a decodable image"):
        read_still(files["d-broken.jpg"])
    with pytest.raises(StillError, match="cannot read it"):
        read_still(tmp_path / "gone.jpg")


@pytest.mark.integration
def test_a_folder_of_stills_is_one_session_of_one_frame_per_image(stack_env, kafka_server,
                                                                  unique_prefix, tmp_path):
    make_stills(tmp_path / "shop")
    result = run_ingest(stack_env, "--source", str(tmp_path / "shop"), "--camera-id", "shop",
                        "--session-id", "shop-1", "--fps", "5")  # fps never drops a still
    assert result.returncode == 0, result.stderr
    assert "camera shop: skipped image d-broken.jpg: not a decodable image" in result.stderr
    assert "3 image(s) read, 1 unreadable" in result.stderr
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete(), timeout_s=30)
    headers = sorted((h for _, h, _ in got.frames), key=lambda h: h.seq)
    assert [(h.seq, h.offset_s, h.still, h.live) for h in headers] == [
        (0, 0.0, True, False), (1, 1.0, True, False), (2, 2.0, True, False)]
    assert [(h.width, h.height) for h in headers] == [(640, 360), (640, 360), (960, 540)]
    start, end = got.control
    assert (start.type, start.purpose, start.notice) == ("session_start", "still image analysis",
                                                         False)
    assert (end.session_id, end.frames_published, end.reason) == ("shop-1", 3, "eof")


@pytest.mark.integration
def test_a_camera_files_purpose_notice_and_min_people_go_with_the_session_start(
        stack_env, kafka_server, unique_prefix, tmp_path):
    make_stills(tmp_path / "shelf")
    config = tmp_path / "cams.yaml"
    config.write_text(f"defaults: {{purpose: shop audit}}\ncameras:\n"
                      f"  - {{id: shelf, url: '{tmp_path / 'shelf'}', notice: true, min_people: 2,"
                      f" session: {{id: shelf-1}}}}\n")
    result = run_ingest(stack_env, "--config", str(config))
    assert result.returncode == 0, result.stderr
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete(), timeout_s=30)
    start = got.control[0]
    assert (start.type, start.purpose, start.notice, start.min_people) == (
        "session_start", "shop audit", True, 2)
    assert "notice is false" not in result.stderr  # a still folder is not a live camera


def test_a_folder_without_images_is_one_line_exit_2(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    result = run_ingest({"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
                        "--source", str(tmp_path))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, "no .jpg, .jpeg, .png or .webp image in folder")


def test_ingest_refuses_a_camera_file_camera_without_purpose(tmp_path):
    config = tmp_path / "cams.yaml"
    config.write_text("cameras:\n"
                      "  - {id: door, url: rtsp://cam/1, purpose: customer sentiment, notice: true}\n"
                      "  - {id: till, url: rtsp://cam/2}\n")
    result = run_ingest({"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
                        "--config", str(config))
    assert result.returncode == 2
    assert_one_clean_line(result.stderr, "ingest: error:", "cameras[1] (till): purpose is required")


def test_a_live_camera_without_notice_is_warned_about_once(caplog):
    cameras = [CameraConfig(id="door", url="rtsp://cam/1", purpose="entrance", notice=True),
               CameraConfig(id="till", url="rtsp://cam/2", purpose="checkout"),
               CameraConfig(id="file", url="call.mp4", purpose="recorded video analysis")]
    with caplog.at_level(logging.WARNING, logger="ingest.service"):
        warn_missing_notices(cameras)
    assert [r.getMessage() for r in caplog.records] == [
        "camera till: notice is false: post a notice where it films before analysing people "
        "(purpose: checkout)"]
