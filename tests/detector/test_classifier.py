"""Model loading as the card says: .keras or .tflite, label order, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.classifier import EmotionModel, ModelError, resolve_serving
from moodstream.emotions import EMOTIONS

CARD_ORDER = ["neutral", "angry", "disgust", "fear", "happy", "sad", "surprise"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny model whose output is its input's mean pixel in one class, as .keras and .tflite."""
    import keras
    import tensorflow as tf
    folder = tmp_path_factory.mktemp("models")
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(7, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    weights = np.zeros((1, 7), np.float32)
    weights[0, 0] = 10.0  # bright faces -> class 0 of the card's order
    model.get_layer("head").set_weights([weights, np.zeros(7, np.float32)])
    model.save(folder / "emotion.keras")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    (folder / "emotion.tflite").write_bytes(converter.convert())
    return folder


def _card(folder, fmt, path, labels=CARD_ORDER):
    (folder / "emotion.card.json").write_text(json.dumps(
        {"name": "t", "labels": labels, "input": {"size": 48}, "serving": {"format": fmt, "path": path}}))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite", "keras"])
def test_card_picks_the_artefact_and_outputs_follow_emotions_order(tiny_models, fmt):
    _card(tiny_models, fmt, f"emotion.{fmt}")
    model = EmotionModel(tiny_models / "emotion.keras" if fmt == "keras" else tiny_models / "emotion.card.json")
    assert model.format == fmt
    probs = model.predict(np.full((3, 48, 48, 1), 255, np.float32))
    assert probs.shape == (3, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert all(EMOTIONS[i] == "neutral" for i in probs.argmax(axis=1))  # card's class 0


@pytest.mark.slow
def test_card_jit_flag_serves_keras_through_xla_with_any_batch_size(tiny_models):
    (tiny_models / "emotion.card.json").write_text(json.dumps(
        {"labels": CARD_ORDER, "serving": {"format": "keras", "path": "emotion.keras",
                                            "jit_compile": True}}))
    model = EmotionModel(tiny_models / "emotion.keras")
    for n in (1, 3, 5):
        probs = model.predict(np.full((n, 48, 48, 1), 255, np.float32))
        assert probs.shape == (n, 7) and all(EMOTIONS[i] == "neutral" for i in probs.argmax(axis=1))


def test_no_card_serves_the_keras_file(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    assert resolve_serving(tmp_path / "m.keras") == ("keras", tmp_path / "m.keras", list(EMOTIONS), 48)


def test_missing_model_and_bad_card_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        resolve_serving(tmp_path / "emotion.keras")
    _card(tmp_path, "tflite", "emotion.tflite")
    with pytest.raises(ModelError, match="model not found: .*emotion.tflite"):
        resolve_serving(tmp_path / "emotion.card.json")
    _card(tmp_path, "keras", "emotion.keras", labels=["a"] * 7)
    with pytest.raises(ModelError, match="not the 7 FER emotions"):
        resolve_serving(tmp_path / "emotion.card.json")


def test_corrupt_keras_file_is_a_model_error(tmp_path):
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="cannot load model"):
        EmotionModel(tmp_path / "bad.keras")


def test_served_probabilities_sum_to_one_exactly():
    import numpy as np
    from detector.classifier import EmotionModel
    model = EmotionModel(Path(__file__).resolve().parents[2] / "models" / "emotion.card.json")
    faces = np.random.default_rng(3).uniform(0, 255, (33, 48, 48, 1)).astype(np.float32)
    probs = model.predict(faces)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
