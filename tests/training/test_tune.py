"""Export-time serving-blur tuning picks the validation-best sigma and ships exactly that model."""

from __future__ import annotations

import numpy as np

from tests.training.conftest import synthetic_faces
from training.models import ModelSpec, build_model
from training.serving import inference_model
from training.tune import blur_sigma, tune_blur, with_blur


def test_with_blur_and_tuning_choose_one_of_the_sigmas():
    trained = inference_model(build_model("moodnet", ModelSpec(width=0.25, serve_blur=1.0,
                                                               augment={"flip": True})))
    assert blur_sigma(trained) == 1.0
    x, y = synthetic_faces(per_class=2)
    sharper = with_blur(trained, 0.0)
    assert blur_sigma(sharper) == 0.0
    faces = x[:4].astype("float32")
    # sigma 0 is the identity, so it equals a model built without the blur layer
    plain = build_model("moodnet", ModelSpec(width=0.25, augment=None))
    plain.set_weights(trained.get_weights())
    np.testing.assert_allclose(np.asarray(sharper(faces)), np.asarray(plain(faces)), atol=1e-5)
    assert not np.allclose(np.asarray(trained(faces)), np.asarray(sharper(faces)), atol=1e-4)

    tuned, report = tune_blur(trained, x, y, sigmas=(0.0, 2.0))
    assert report["trained_sigma"] == 1.0
    assert set(report["val_accuracy_by_sigma"]) == {"0", "1", "2"}
    best = max(report["val_accuracy_by_sigma"].values())
    assert report["val_accuracy_by_sigma"][f"{report['chosen_sigma']:g}"] == best
    assert blur_sigma(tuned) == report["chosen_sigma"]


def test_models_without_blur_are_left_alone():
    model = build_model("dcnn", ModelSpec(augment=None))
    x, y = synthetic_faces(per_class=1)
    same, report = tune_blur(model, x, y)
    assert same is model and report is None


def test_matmul_blur_equals_the_blur_layer():
    import keras
    from training.tune import matmul_blur
    model = inference_model(build_model("moodnet", ModelSpec(width=0.25, serve_blur=3.0, augment=None)))
    fast = matmul_blur(model)
    assert blur_sigma(fast) is None  # built-in layers only: loads without moodstream's custom layer
    faces = np.random.default_rng(2).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    blurred = keras.Model(model.input, model.get_layer("serve_blur").output)(faces)
    same = keras.Model(fast.input, fast.get_layer("serve_blur").output)(faces)
    np.testing.assert_allclose(np.asarray(same), np.asarray(blurred), atol=2e-4)
    np.testing.assert_allclose(np.asarray(fast(faces)), np.asarray(model(faces)), atol=1e-5)
