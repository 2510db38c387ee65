"""User mistakes at start-up: one clear line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from moodstream.embedded import free_port
from tests.conftest import REPO
from tests.detector.conftest import MODEL


def run_detector(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
               MOODSTREAM_CONNECT_TIMEOUT_S="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "detector", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = [l for l in result.stderr.splitlines() if l.startswith("detector: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_missing_model_exits_2(tmp_path):
    result = run_detector("--model", str(tmp_path / "nope.keras"))
    assert result.returncode == 2 and "model not found" in one_line(result)


@pytest.mark.parametrize("flag, field", [("--max-batch", "max_batch"),
                                         ("--detect-refresh-frames", "detect_refresh_frames")])
def test_bad_setting_exits_2(flag, field):
    result = run_detector(flag, "0", "--model", str(MODEL))
    assert result.returncode == 2 and field in one_line(result)


def test_bad_cameras_file_exits_2(tmp_path):
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("cameras: [")
    result = run_detector("--cameras", str(cameras), "--model", str(MODEL))
    assert result.returncode == 2 and "is not valid" in one_line(result)


@pytest.mark.slow
def test_unreachable_broker_exits_1():
    result = run_detector("--model", str(MODEL))
    assert result.returncode == 1 and "cannot reach Kafka" in one_line(result)


def test_unloadable_model_exits_2_even_when_the_broker_is_down(tmp_path):
    """The model loads while the detector connects: a model that exists but cannot be loaded
    is still reported as the configuration error it is (exit 2, never restarted), not
    hidden behind the unreachable broker (exit 1)."""
    model = tmp_path / "broken.tflite"
    model.write_bytes(b"not a flatbuffer" * 64)
    result = run_detector("--model", str(model))
    assert result.returncode == 2 and "cannot load TFLite model" in one_line(result)
