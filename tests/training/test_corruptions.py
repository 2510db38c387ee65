"""Camera corruptions: deterministic given a seed, and each one really changes the faces."""

from __future__ import annotations

import numpy as np
import pytest

from training.corruptions import CORRUPTIONS, corrupt, random_camera_corruption
from training.evaluate import expected_calibration_error


def _faces(n=8, seed=0):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, 48 * 48).reshape(48, 48)
    return np.clip(base[None] + rng.normal(0, 20, (n, 48, 48)), 0, 255).astype(np.uint8)[..., None]


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_deterministic_given_a_seed(name):
    faces = _faces()
    a, b = corrupt(faces, name, seed=7), corrupt(faces, name, seed=7)
    assert a.dtype == np.uint8 and a.shape == faces.shape
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - faces).mean() > 0.5, "the corruption changed nothing"


def test_random_directions_follow_the_seed():
    faces = _faces()
    assert not np.array_equal(corrupt(faces, "shift_6px", 1), corrupt(faces, "shift_6px", 2))


def test_training_corruption_touches_about_the_requested_share():
    faces = _faces(400)
    out = random_camera_corruption(faces, np.random.default_rng(0), 0.5)
    changed = (out != faces).reshape(len(faces), -1).any(axis=1).mean()
    assert 0.35 < changed < 0.6
    untouched = random_camera_corruption(faces, np.random.default_rng(0), 0.0)
    np.testing.assert_array_equal(untouched, faces)


def test_ece_on_a_case_with_a_known_answer():
    # Two faces at confidence 0.9 whose predicted class got 60% and 100% of the votes
    # (bin mean 0.8: gap 0.1), two at 0.6 that got 60% (gap 0.0): ECE = 0.5*0.1 + 0.5*0 = 0.05.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    votes = np.array([[0.6, 0.4], [1.0, 0.0], [0.4, 0.6], [0.4, 0.6]])
    assert expected_calibration_error(probs, votes) == pytest.approx(0.05)
    # One-hot votes turn it into the classic accuracy ECE: confident and always right -> 0.
    sure = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(sure, sure) == pytest.approx(0.0)
