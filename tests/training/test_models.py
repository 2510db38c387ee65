"""Registry models build on raw [0, 255] pixels; the inference copy is float32 and deterministic."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from training.models import DEFAULT_AUGMENT, ModelSpec, UnknownModelError, build_model, model_names
from training.serving import inference_model

SMALL = ("moodnet", "dcnn", "custom_cnn", "mini_xception")


def test_registry_lists_every_seed_and_the_default():
    assert set(model_names()) >= {"moodnet", "dcnn", "custom_cnn", "mini_xception", "resnet50v2",
                                  "efficientnetb0"}
    with pytest.raises(UnknownModelError, match="unknown model 'nope'"):
        build_model("nope")


@pytest.mark.parametrize("name", SMALL)
def test_small_models_output_seven_probabilities(name):
    model = build_model(name, ModelSpec(width=0.25, augment=None))
    probs = np.asarray(model(np.full((2, 48, 48, 1), 128.0, np.float32), training=False))
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_transfer_model_takes_grey_faces():
    model = build_model("efficientnetb0", ModelSpec(input_size=32, channels=1, augment=None))
    assert model(np.zeros((1, 32, 32, 1), np.float32), training=False).shape == (1, 7)


def test_inference_model_from_mixed_precision_is_float32_and_ignores_augmentation():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        trained = build_model("moodnet", ModelSpec(width=0.25, augment=DEFAULT_AUGMENT))
    finally:
        keras.config.set_dtype_policy("float32")
    rng = np.random.default_rng(0)
    # non-trivial BatchNorm statistics, so batch-stat vs moving-stat behaviour would show
    trained.set_weights([np.abs(rng.normal(1, 0.3, w.shape)).astype("float32") if "variance" in v.path
                         else rng.normal(0, 0.05, w.shape).astype("float32")
                         for v, w in zip(trained.weights, trained.get_weights())])
    served = inference_model(trained)
    assert served.dtype_policy.name == "float32"
    assert all(layer.dtype_policy.name == "float32" for layer in served.layers)
    assert not any(type(layer).__name__.startswith("Random") for layer in served.layers)
    faces = rng.integers(0, 256, (8, 48, 48, 1)).astype("float32")
    reference = np.asarray(trained(faces, training=False))
    # a plain call (training=None) must be inference: Keras records the augmentation
    # layers' training=True default, which the inference copy must not inherit
    np.testing.assert_allclose(np.asarray(served(faces)), np.asarray(served(faces, training=False)))
    np.testing.assert_allclose(np.asarray(served(faces[:1])), np.asarray(served(faces))[:1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(served(faces)), reference, atol=0.02)  # bf16 vs f32
