"""The production lock carries neither test tools nor TensorFlow; each lock layers on the last."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _names(lock: str) -> set[str]:
    lines = (REPO / lock).read_text().splitlines()
    return {line.split("==")[0].strip().lower() for line in lines
            if line.strip() and not line.startswith(("#", "-r"))}


def test_production_lock_has_no_test_tools_and_no_tensorflow():
    prod = _names("requirements.lock")
    assert not prod & {"pytest", "pytest-timeout", "selenium", "hypothesis", "dash-testing-stub",
                       "kubernetes-validate", "tensorflow", "keras", "tf2onnx"}
    assert {"ai-edge-litert", "onnxruntime", "opencv-python-headless", "kafka-python"} <= prod


def test_locks_layer_production_then_training_then_tests():
    assert "-r requirements.lock" in (REPO / "requirements-train.lock").read_text()
    assert "-r requirements-train.lock" in (REPO / "requirements-test.lock").read_text()
    assert {"tensorflow", "tf2onnx"} <= _names("requirements-train.lock")
    assert {"pytest", "hypothesis"} <= _names("requirements-test.lock")
    prod, train, test = (_names(f) for f in ("requirements.lock", "requirements-train.lock",
                                              "requirements-test.lock"))
    assert not (prod & train) and not (prod & test) and not (train & test)  # one pin each
