"""`moodstream roi-preview`: a camera's exclusion zones drawn over one of its real frames."""

from __future__ import annotations

import argparse
import os

import cv2
import numpy as np

from moodstream.cli import _demo_privacy
from moodstream.embedded import free_port
from tests.conftest import VIDEOS, require
from tests.ingest.stills_data import frame_of
from tests.moodstream.test_cli_end_to_end import moodstream

CAMERAS = """
defaults: {{max_width: 1280}}
cameras:
  - id: till
    url: {smile}
    purpose: customer sentiment, till
    roi: [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]     # the left half: the cashier
  - id: hall
    url: {crowd}
    purpose: customer sentiment, hall
    roi: [[[0, 0], [320, 0], [320, 720], [0, 720]]]  # pixels of the 1280-wide frame
  - id: door
    url: {smile}
    purpose: customer sentiment, door
  - id: yard
    url: rtsp://admin:hunter2@127.0.0.1:{port}/live
    purpose: customer sentiment, yard
"""


def camera_file(tmp_path):
    path = tmp_path / "cams.yaml"
    path.write_text(CAMERAS.format(smile=require(VIDEOS / "single_face_smile.mp4"),
                                   crowd=require(VIDEOS / "crowd_walk_1080p.mp4"), port=free_port()))
    return path


def preview(tmp_path, *args):
    return moodstream("roi-preview", str(camera_file(tmp_path)), *args, env=dict(os.environ),
                      timeout=120)


def test_relative_zones_are_drawn_over_the_cameras_first_frame(tmp_path):
    out = tmp_path / "till.png"
    result = preview(tmp_path, "--camera", "till", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"wrote {out} (640x360): 1 exclusion zone(s) of camera till "
                                     "cover 50% of the frame; check every staff area is inside one")
    drawn, frame = cv2.imread(str(out)).astype(int), frame_of("single_face_smile.mp4", 0).astype(int)
    assert drawn.shape == frame.shape
    inside, outside = (slice(100, 300), slice(40, 280)), (slice(100, 300), slice(360, 600))
    assert np.abs(drawn[outside] - frame[outside]).mean() < 2  # untouched (PNG, lossless)
    red_shift = (drawn[inside][..., 2] - frame[inside][..., 2]).mean()
    assert red_shift > 10 and (drawn[inside][..., 0] < frame[inside][..., 0]).mean() > 0.9


def test_pixel_zones_are_in_the_frame_the_detector_sees(tmp_path):
    out = tmp_path / "hall.jpg"
    result = preview(tmp_path, "--camera", "hall", "--out", str(out), "--at", "2")
    assert result.returncode == 0, result.stderr
    assert "(1280x720): 1 exclusion zone(s) of camera hall cover 25% of the frame" in result.stdout
    assert cv2.imread(str(out)).shape == (720, 1280, 3)


def test_a_camera_without_zones_is_said_plainly(tmp_path):
    out = tmp_path / "door.png"
    result = preview(tmp_path, "--camera", "door", "--out", str(out))
    assert result.returncode == 0 and out.exists()
    assert "camera door has NO exclusion zone: every face in view is analysed" in result.stdout


def test_mistakes_are_one_line_and_exit_2_without_the_password(tmp_path):
    result = preview(tmp_path, "--camera", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"moodstream: error: no camera 'nope' in {tmp_path / 'cams.yaml'} "
        "(cameras: till, hall, door, yard)"]
    result = preview(tmp_path, "--camera", "yard", "--out", str(tmp_path / "yard.png"))
    assert result.returncode == 2 and "hunter2" not in result.stderr + result.stdout
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("moodstream: error: cannot grab a frame from rtsp://***@127.0.0.1")
    assert not (tmp_path / "yard.png").exists()


def test_demo_cameras_get_a_purpose_and_say_no_notice_unless_told():
    args = argparse.Namespace(purpose=None, notice=False)
    assert _demo_privacy(args, "store-entrance", live=False) == {
        "MOODSTREAM_INGEST_PURPOSE": "demo: customer sentiment, store entrance",
        "MOODSTREAM_INGEST_NOTICE": "false"}
    told = argparse.Namespace(purpose="queue at till 2", notice=True)
    assert _demo_privacy(told, "camera-1", live=True) == {
        "MOODSTREAM_INGEST_PURPOSE": "queue at till 2", "MOODSTREAM_INGEST_NOTICE": "true"}
    assert "live camera" in _demo_privacy(args, "camera-1", live=True)["MOODSTREAM_INGEST_PURPOSE"]
