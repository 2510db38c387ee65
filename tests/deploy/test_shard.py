"""deploy/base/ingest/shard.py: each camera is read by exactly one ingest pod."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from ingest.config import IngestSettings, load_camera_file
from tests.deploy.helpers import DEPLOY, shard_script

shard = shard_script()
SCRIPT = DEPLOY / "base" / "ingest" / "shard.py"


def cameras(n: int, **extra) -> dict:
    return {"defaults": {"fps": 5}, "cameras": [{"id": f"cam-{i}", "url": f"rtsp://h/{i}", **extra}
                                                 for i in range(n)]}


def owners(data: dict, shards: int) -> dict[str, int]:
    return {c["id"]: index for index, part in enumerate(shard.split(data, shards))
            for c in part["cameras"]}


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_every_camera_is_in_exactly_one_shard(shards):
    data = cameras(40)
    parts = shard.split(data, shards)
    ids = [c["id"] for part in parts for c in part["cameras"]]
    assert sorted(ids) == sorted(c["id"] for c in data["cameras"])
    assert all(part["defaults"] == data["defaults"] for part in parts)


def test_adding_or_removing_cameras_never_moves_another():
    before = owners(cameras(30), 4)
    grown = cameras(30)
    grown["cameras"] += [{"id": f"new-{i}", "url": "rtsp://n"} for i in range(10)]
    after = owners(grown, 4)
    assert all(after[cam] == shard for cam, shard in before.items())
    shrunk = cameras(30)
    del shrunk["cameras"][5:12]
    assert all(before[cam] == s for cam, s in owners(shrunk, 4).items())


def test_one_more_shard_moves_only_cameras_to_the_new_shard():
    before, after = owners(cameras(200), 4), owners(cameras(200), 5)
    moved = [cam for cam in before if before[cam] != after[cam]]
    assert all(after[cam] == 4 for cam in moved)
    assert 20 <= len(moved) <= 60  # about 1/5 of them


def test_a_pin_wins_and_is_removed():
    data = cameras(6)
    data["cameras"][0]["shard"] = 2
    parts = shard.split(data, 3)
    assert "cam-0" in [c["id"] for c in parts[2]["cameras"]]
    assert all("shard" not in c for part in parts for c in part["cameras"])
    for bad in (3, -1, "1", True):
        data["cameras"][0]["shard"] = bad
        with pytest.raises(shard.ShardError):
            shard.split(data, 3)


@pytest.mark.parametrize("data, message", [
    ({"cameras": []}, "non-empty"),
    ({"cameras": [{"url": "x"}]}, "needs an `id`"),
    ({"cameras": [{"id": "a"}, {"id": "a"}]}, "duplicate"),
])
def test_bad_camera_files(data, message):
    with pytest.raises(shard.ShardError, match=message):
        shard.split(data, 2)


def test_ordinal_comes_from_the_statefulset_host_name():
    assert shard.ordinal_from_hostname("moodstream-ingest-12") == 12
    with pytest.raises(shard.ShardError):
        shard.ordinal_from_hostname("laptop")


def test_each_share_is_a_camera_file_ingest_accepts(tmp_path):
    data = yaml.safe_load((DEPLOY / "base" / "cameras.yaml").read_text())
    data["cameras"][1]["shard"] = 0
    for index, part in enumerate(shard.split(data, 2)):
        path = tmp_path / f"share-{index}.yaml"
        shard.write_share(part, path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # camera URLs may hold passwords
        if shard.enabled(part):
            loaded = load_camera_file(path, IngestSettings())
            assert [c.id for c in loaded] == shard.enabled(part)


def test_main_writes_the_share_and_execs_the_command(tmp_path):
    source = tmp_path / "cameras.yaml"
    source.write_text(yaml.safe_dump(cameras(12)))
    out = tmp_path / "run" / "share.yaml"
    marker = tmp_path / "ran.json"
    command = [sys.executable, "-c",
               f"import json,sys; json.dump(sys.argv[1:], open({str(marker)!r}, 'w'))", "--config", str(out)]
    result = subprocess.run([sys.executable, str(SCRIPT), "--cameras", str(source), "--shards", "3",
                             "--out", str(out), "--ordinal", "1", "--", *command],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(marker.read_text()) == ["--config", str(out)]
    mine = [c["id"] for c in yaml.safe_load(out.read_text())["cameras"]]
    assert mine == [c["id"] for c in shard.split(cameras(12), 3)[1]["cameras"]]
    assert f"ingest shard 1/3: {len(mine)} camera(s)" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--ordinal", "3"], "outside 0..2"),
    (["--ordinal", "0", "--cameras", "/nonexistent.yaml"], "cannot read"),
])
def test_main_refuses_a_wrong_setup(tmp_path, args, message):
    source = tmp_path / "cameras.yaml"
    source.write_text(yaml.safe_dump(cameras(3)))
    argv = ["--cameras", str(source), "--shards", "3", "--out", str(tmp_path / "o.yaml"), *args,
            "--", "true"]
    result = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == shard.EXIT_CONFIG and message in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_shard_without_cameras_stays_up_as_an_idle_standby(tmp_path):
    source = tmp_path / "cameras.yaml"
    data = {"cameras": [{"id": "only", "url": "rtsp://h/1", "shard": 0}]}
    source.write_text(yaml.safe_dump(data))
    port = _free_port()
    env = {**os.environ, "MOODSTREAM_INGEST_METRICS_PORT": str(port),
           "MOODSTREAM_INGEST_METRICS_HOST": "127.0.0.1"}
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--cameras", str(source), "--shards", "2",
                                "--out", str(tmp_path / "o.yaml"), "--ordinal", "1", "--", "false"],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
                    body = json.loads(reply.read())
                break
            except OSError:
                assert process.poll() is None, process.stderr.read()
                assert time.monotonic() < deadline, "idle standby never answered"
                time.sleep(0.2)
        assert body["status"] == "idle" and body["shard"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            assert reply.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            assert reply.status == 200
        assert not (tmp_path / "o.yaml").exists()
        process.terminate()
        assert process.wait(timeout=10) == 0
        assert "idle standby" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
