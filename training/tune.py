"""Export-time tuning of the inference-only blur (moodstream.model_layers.InferenceBlur).

The FER2013 Training split is blurred while PublicTest and real cameras are sharp, so
moodnet blurs its input at inference only. The best sigma depends on the trained
weights, so export re-measures it on the validation set and ships the best one. It is
one scalar chosen on validation data; the card records every sigma tried.
"""

from __future__ import annotations

import logging

import numpy as np

from training.evaluate import evaluate_arrays
from training.serving import KerasPredictor

log = logging.getLogger(__name__)

DEFAULT_SIGMAS = (0.0, 2.0, 2.5, 3.0, 3.5, 4.0)


def blur_sigma(model) -> float | None:
    """The model's serving blur sigma, or None when it has no InferenceBlur layer."""
    for layer in model.layers:
        if type(layer).__name__ == "InferenceBlur":
            return float(layer.sigma)
    return None


def with_blur(model, sigma: float):
    """A copy of `model` whose InferenceBlur layers use `sigma` (the layer has no weights)."""
    import keras
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"].endswith("InferenceBlur"):
            layer["config"]["sigma"] = float(sigma)
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def tune_blur(model, x: np.ndarray, y: np.ndarray, sigmas=DEFAULT_SIGMAS):
    """Pick the validation-best blur sigma; returns (model, report). No blur layer: unchanged.

    Ties keep the trained sigma, then the smaller one (less blur, less compute).
    """
    trained = blur_sigma(model)
    if trained is None:
        return model, None
    candidates = sorted({float(s) for s in sigmas} | {trained})
    accuracy = {}
    for sigma in candidates:
        accuracy[sigma] = evaluate_arrays(KerasPredictor(with_blur(model, sigma), jit=False), x, y)["accuracy"]
        log.info("serve_blur sigma %.2f: val accuracy %.4f", sigma, accuracy[sigma])
    best = max(candidates, key=lambda s: (accuracy[s], s == trained, -s))
    report = {"trained_sigma": trained, "chosen_sigma": best,
              "val_accuracy_by_sigma": {f"{s:g}": a for s, a in accuracy.items()},
              "note": "sigma chosen on the validation set the card's metrics use"}
    return (model if best == trained else with_blur(model, best)), report
