"""`moodstream analyze` of still images, mixed with a video, through the real path:
ingest -> Tansu -> detector -> Tansu -> aggregator -> Valkey, each its own process."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid

import cv2
import numpy as np
import pytest

from moodstream.emotions import EMOTIONS
from moodstream.figures import EMOTION_COLORS
from moodstream.redis_keys import RedisKeys
from moodstream.still_reports import stills_csv
from tests.conftest import VIDEOS, require
from tests.ingest.stills_data import make_stills
from tests.moodstream.test_cli_end_to_end import moodstream, video_facts


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory, kafka_server, redis_server):
    root = tmp_path_factory.mktemp("stills")
    files = make_stills(root / "shop", crowd=True)
    (root / "loose").mkdir()  # an image named on its own, with the same name as one in shop/
    files["loose"] = root / "loose" / "a-smile.jpg"
    files["loose"].write_bytes(files["a-smile.jpg"].read_bytes())
    prefix = f"st{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_server.bootstrap,
               REDIS_URL=redis_server.url, MOODSTREAM_TOPIC_PREFIX=prefix,
               MOODSTREAM_REDIS_PREFIX=prefix)
    video = require(VIDEOS / "no_face.mp4")
    result = moodstream("analyze", str(root / "shop"), str(video), str(files["loose"]), "--report",
                        str(root / "r.json"), "--annotate", str(root / "annotated"), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, files, result, env


@pytest.mark.integration
@pytest.mark.slow
def test_a_folder_of_stills_gives_one_entry_per_image(analyzed):
    root, files, result, _env = analyzed
    report = json.loads((root / "r-shop.json").read_text())
    assert report["source"] == str(root / "shop") and report["frames_processed"] == 4
    assert [image["file"] for image in report["images"]] == [
        str(files[n]) for n in ("a-smile.jpg", "b-smile.png", "c-empty.webp", "e-crowd.jpg")]
    smile_a, smile_b, empty, crowd = report["images"]
    for image in (smile_a, smile_b):
        assert image["analysed"] and image["faces"] == len(image["detections"]) == 1
        assert image["people"] == 1 and image["dominant_emotion"] in EMOTIONS
        [face] = image["detections"]
        x, y, w, h = face["box"]
        assert 0 <= x < x + w <= 640 and 0 <= y < y + h <= 360 and w > 40
        assert set(face["emotions"]) == set(EMOTIONS) and -1 <= face["sentiment"] <= 1
        assert image["sentiment"] == pytest.approx(face["sentiment"], abs=1e-3)
    assert (empty["faces"], empty["detections"], empty["sentiment"]) == (0, [], None)
    # 1920x1080 was published at ingest's 1280 max width: boxes are back in the image's pixels
    assert (crowd["width"], crowd["height"]) == (1920, 1080) and crowd["faces"] >= 1
    assert crowd["faces"] == len(crowd["detections"]) == crowd["people"]
    assert all(d["box"][0] + d["box"][2] <= 1920 and d["box"][1] + d["box"][3] <= 1080
               for d in crowd["detections"])
    assert report["faces_detected"] == sum(i["faces"] for i in report["images"])
    assert report["people"] == report["faces_detected"]  # no face tracked across images
    assert report["unreadable_images"] == [{"file": str(files["d-broken.jpg"]), "reason":
                                            "not a decodable image (corrupt, or not JPEG, "
                                            "PNG or WebP)"}]
    assert f"moodstream: skipped image {files['d-broken.jpg']}: not a decodable image" \
        in result.stderr
    assert "4 image(s) (1 unreadable, skipped)" in result.stdout


@pytest.mark.integration
@pytest.mark.slow
def test_images_named_one_by_one_are_one_more_report(analyzed):
    root, files, result, _env = analyzed
    report = json.loads((root / "r-stills.json").read_text())
    assert report["source"] == "1 image" and report["camera_id"] == "stills"
    [image] = report["images"]
    assert image["file"] == str(files["loose"]) and image["faces"] == 1
    assert report["people"] == 1 and report["unreadable_images"] == []


@pytest.mark.integration
@pytest.mark.slow
def test_a_video_in_the_same_call_gets_its_own_report(analyzed):
    root, _files, result, _env = analyzed
    report = json.loads((root / "r-no_face.json").read_text())
    frames, _ = video_facts(VIDEOS / "no_face.mp4")
    assert report["frames_processed"] == frames and report["faces_detected"] == 0
    assert "images" not in report and "wrote" in result.stdout


@pytest.mark.integration
@pytest.mark.slow
def test_annotate_writes_copies_with_the_boxes_drawn(analyzed):
    root, files, result, _env = analyzed
    report = json.loads((root / "r-shop.json").read_text())
    out = root / "annotated" / "shop"  # a folder per still job: same names never meet
    assert sorted(p.name for p in out.iterdir()) == ["a-smile.jpg", "b-smile.png",
                                                     "c-empty.webp", "e-crowd.jpg"]
    assert f"annotated 4 image(s) in {out}" in result.stdout
    assert [p.name for p in (root / "annotated" / "stills").iterdir()] == ["a-smile.jpg"]
    png = report["images"][1]  # lossless: the drawn colour can be checked exactly
    [face] = png["detections"]
    x, y, w, h = face["box"]
    drawn, original = cv2.imread(str(out / "b-smile.png")), cv2.imread(str(files["b-smile.png"]))
    hexa = EMOTION_COLORS[face["dominant_emotion"]]
    bgr = [int(hexa[i:i + 2], 16) for i in (5, 3, 1)]
    assert list(drawn[y + h, x + w // 2]) == bgr  # the box's bottom edge
    assert not np.array_equal(drawn, original) and drawn.shape == original.shape
    assert not (out / "d-broken.jpg").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_the_csv_form_has_one_row_per_image(analyzed):
    root, files, _, _env = analyzed
    report = json.loads((root / "r-shop.json").read_text())
    rows = list(csv.DictReader(io.StringIO(stills_csv(report))))
    assert [r["file"] for r in rows] == [str(files[n]) for n in (
        "a-smile.jpg", "b-smile.png", "c-empty.webp", "e-crowd.jpg", "d-broken.jpg")]
    assert rows[0]["status"] == "analysed" and len(rows[0]["boxes"].split()) == 4
    assert rows[-1]["status"].startswith("unreadable: not a decodable image")


@pytest.mark.integration
@pytest.mark.slow
def test_each_camera_purpose_reaches_its_live_hash_and_session(analyzed):
    import redis
    root, _files, _result, env = analyzed
    r = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
    keys = RedisKeys(env["MOODSTREAM_REDIS_PREFIX"])
    for camera, purpose in (("shop", "still image analysis"), ("no_face", "recorded video analysis")):
        live = r.hgetall(keys.camera_live(camera))
        assert (live["purpose"], live["notice"]) == (purpose, "0")
        meta = r.hgetall(keys.meta(live["session_id"]))
        assert (meta["purpose"], meta["notice"]) == (purpose, "0")


def test_only_unreadable_images_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    result = moodstream("analyze", str(tmp_path / "bad.png"), "--report", str(tmp_path / "r.json"),
                        env=dict(os.environ), timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"moodstream: skipped image {tmp_path / 'bad.png'}: not a decodable image "
                     "(corrupt, or not JPEG, PNG or WebP)",
                     "moodstream: error: nothing to analyse: no image could be read"]


@pytest.mark.parametrize("target", ["file", "url"])
def test_annotate_into_a_file_or_a_url_is_one_line_and_exit_2(tmp_path, target):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((40, 40, 3), np.uint8))
    (tmp_path / "taken.txt").write_text("a file")
    where = str(tmp_path / "taken.txt") if target == "file" else "s3://bucket/annotated"
    result = moodstream("analyze", str(image), "--report", str(tmp_path / "r.json"),
                        "--annotate", where, env=dict(os.environ), timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("moodstream: error: --annotate ") and (
        "is a file: name a folder" in line if target == "file" else "not a URL" in line)
    assert not (tmp_path / "r.json").exists()
