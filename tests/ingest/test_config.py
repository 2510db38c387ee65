"""Camera configuration: CLI camera, YAML and TOML files, and one-line errors for bad ones."""

from __future__ import annotations

import pytest

from ingest.config import CameraConfig, IngestSettings, PacingMode, load_camera_file
from moodstream.settings import SettingsError

YAML = """
defaults: {fps: 2, jpeg_quality: 70, purpose: customer sentiment}
cameras:
  - id: door
    url: rtsp://admin:secret@10.0.0.5/stream1
    purpose: customer sentiment, store entrance
    notice: true
    session: {gap_s: 10, every_s: 3600}
    roi: [[[0, 0], [100, 0], [100, 80]]]
  - id: desk
    url: 0
    fps: 0
    max_width: 640
  - id: spare
    url: /dev/null
    enabled: false
"""

TOML = """
[defaults]
mode = "fast"

[[cameras]]
id = "clip"
url = "video.mp4"
purpose = "call quality review"
loop = true
session = { id = "call-42" }
"""


def settings(**kw) -> IngestSettings:
    return IngestSettings.load(kafka_bootstrap_servers="127.0.0.1:1", **kw)


def test_cli_camera_takes_cli_values():
    [camera] = settings(source="a.mp4", camera_id="till-3", session_id="s1", fps=0,
                        mode="fast", loop=True, max_width=320, jpeg_quality=50).cameras()
    assert camera == CameraConfig(id="till-3", url="a.mp4", fps=0, mode=PacingMode.FAST,
                                  loop=True, max_width=320, jpeg_quality=50,
                                  purpose="recorded video analysis",
                                  session={"id": "s1", "gap_s": 30.0, "every_s": 3600})


def test_yaml_file_merges_defaults_and_skips_disabled(tmp_path):
    path = tmp_path / "cams.yaml"
    path.write_text(YAML)
    door, desk = settings(config=path).cameras()
    assert (door.id, door.fps, door.jpeg_quality, door.session.every_s) == ("door", 2, 70, 3600)
    assert door.roi == [[(0, 0), (100, 0), (100, 80)]]
    assert (door.purpose, door.notice) == ("customer sentiment, store entrance", True)
    assert (desk.purpose, desk.notice) == ("customer sentiment", False)  # from defaults
    assert (desk.url, desk.fps, desk.max_width) == ("0", 0, 640)  # webcam index as text


def test_toml_file(tmp_path):
    path = tmp_path / "cams.toml"
    path.write_text(TOML)
    [clip] = load_camera_file(path, settings())
    assert (clip.mode, clip.loop, clip.session.id) == (PacingMode.FAST, True, "call-42")


@pytest.mark.parametrize("text, message", [
    ("cameras: []", "non-empty `cameras`"),
    ("cameras: [{id: 'bad id!', url: x}]", "cameras[0]: id"),
    ("cameras: [{id: a, url: x, fps: -1}]", "cameras[0]: fps"),
    ("cameras: [{id: a, url: x, colour: red}]", "cameras[0]: colour"),
    ("cameras: [{id: a, url: x, roi: [[[0, 0], [1, 1]]]}]", "at least 3 points"),
    ("cameras: [{id: a, url: x, purpose: p}, {id: a, url: y, purpose: p}]",
     "duplicate camera id(s): a"),
    ("cameras: [{id: a, url: x, purpose: \"two\\nlines\"}]", "cameras[0]: purpose"),
    ("cameras: [{id: a, url: x, purpose: p, notice: maybe}]", "cameras[0]: notice"),
    ("cameras: [{id: a, url: x, purpose: p, min_people: 0}]", "cameras[0]: min_people"),
    ("cameras: [{id: a, url: x", "is not valid"),
])
def test_bad_yaml_is_one_line_settings_error(tmp_path, text, message):
    path = tmp_path / "cams.yml"
    path.write_text(text)
    with pytest.raises(SettingsError) as err:
        settings(config=path).cameras()
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("camera", ["{id: door, url: rtsp://cam/1}",
                                    "{id: door, url: rtsp://cam/1, purpose: '   '}",
                                    "{id: door, url: rtsp://cam/1, purpose: null}"])
def test_a_camera_without_purpose_is_refused(tmp_path, camera):
    path = tmp_path / "cams.yaml"
    path.write_text(f"cameras:\n  - {{id: ok, url: x.mp4, purpose: audit}}\n  - {camera}\n")
    with pytest.raises(SettingsError) as err:
        settings(config=path).cameras()
    assert "cameras[1] (door): purpose is required" in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_camera_purpose_defaults_by_source_kind(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    assert settings(source="a.mp4").cameras()[0].purpose == "recorded video analysis"
    assert settings(source=str(tmp_path)).cameras()[0].purpose == "still image analysis"
    assert settings(source=str(tmp_path / "a.png")).cameras()[0].purpose == "still image analysis"
    [cam] = settings(source="rtsp://cam/1", purpose="queue at till 2", notice=True).cameras()
    assert (cam.purpose, cam.notice) == ("queue at till 2", True)
    with pytest.raises(SettingsError, match="camera cam1 has no purpose: set MOODSTREAM_INGEST_PURPOSE"):
        settings(source="rtsp://cam/1").cameras()


def test_missing_or_unknown_config_file(tmp_path):
    with pytest.raises(SettingsError, match="cannot read camera config"):
        settings(config=tmp_path / "nope.yaml").cameras()
    other = tmp_path / "cams.json"
    other.write_text("{}")
    with pytest.raises(SettingsError, match="use a .yaml"):
        settings(config=other).cameras()


def test_nothing_to_ingest_and_bad_cli_values():
    with pytest.raises(SettingsError, match="--source or --config"):
        settings().cameras()
    with pytest.raises(SettingsError, match="jpeg_quality"):
        settings(source="a.mp4", jpeg_quality=0)
    with pytest.raises(SettingsError, match="camera-id"):
        settings(source="a.mp4", camera_id="no spaces").cameras()


def test_shipped_example_config_parses():
    from tests.conftest import REPO
    cameras = settings(config=REPO / "ingest" / "cameras.example.yaml").cameras()
    assert [c.id for c in cameras] == ["entrance", "desk", "recorded-call"]
    entrance, desk, call = cameras
    assert (entrance.session.gap_s, entrance.session.every_s, len(entrance.roi)) == (30, 3600, 1)
    assert (desk.url, desk.fps, call.mode, call.session.id) == ("0", 10, PacingMode.FAST, "call-0042")
    assert call.session.every_s == 3600  # nested defaults merge, not replace
    assert all(c.purpose for c in cameras) and entrance.notice and not call.notice
    assert (entrance.min_people, desk.min_people) == (1, 3)


def test_only_prefixed_environment_configures_ingest(monkeypatch):
    monkeypatch.setenv("FPS", "9")
    monkeypatch.setenv("MODE", "fast")
    monkeypatch.setenv("MOODSTREAM_INGEST_STALL_TIMEOUT_S", "3")
    monkeypatch.setenv("MOODSTREAM_INGEST_LOOP", "true")
    s = settings(source="a.mp4")
    assert (s.fps, s.mode, s.stall_timeout_s, s.loop) == (5.0, PacingMode.REALTIME, 3.0, True)
    assert settings(source="a.mp4", fps=2).fps == 2  # CLI wins over env
