"""The one inference runner: LiteRT without TensorFlow, any batch size, same numbers as a batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moodstream.inference import BATCH_BUCKETS, InferenceError, bucket_for, tflite_runner

MODEL = Path(__file__).resolve().parents[2] / "models" / "emotion.tflite"


def test_buckets_hold_every_batch_size():
    assert [bucket_for(n) for n in (1, 3, 5, 9, 13, 17, 25, 33, 49, 64, 65, 130)] == [
        1, 4, 8, 12, 16, 24, 32, 48, 64, 64, 128, 192]
    assert all(bucket_for(b) == b for b in BATCH_BUCKETS)


def test_padded_batches_give_the_same_probabilities_as_one_full_batch():
    run = tflite_runner(MODEL, threads=1)
    faces = np.random.default_rng(0).uniform(0, 255, (70, 48, 48, 1)).astype(np.float32)
    full = run(faces)
    assert full.shape == (70, 7)
    for n in (1, 3, 7, 33, 64):
        np.testing.assert_allclose(run(faces[:n]), full[:n], atol=1e-6)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=0.02)


def test_litert_serves_without_importing_tensorflow():
    code = ("import sys, numpy as np; from moodstream.inference import tflite_runner; "
            f"r = tflite_runner({str(MODEL)!r}); r(np.zeros((2, 48, 48, 1), np.float32)); "
            "print(r.runtime, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["litert", "False"]


def test_a_broken_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(InferenceError, match="cannot load TFLite model"):
        tflite_runner(bad)
