"""The seven FER2013 emotions and their sentiment valence."""

from __future__ import annotations

from typing import Mapping

# Model output order: FER2013's alphabetical class folders, as the training readers sort them.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# Valence of each emotion for the customer-sentiment signal, in [-1, 1].
# Happy is the only clearly positive class; surprise is mildly positive because in
# retail and service footage it mostly accompanies pleased reactions; neutral is 0.
DEFAULT_VALENCE: Mapping[str, float] = {
    "angry": -1.0,
    "disgust": -1.0,
    "fear": -0.6,
    "happy": 1.0,
    "neutral": 0.0,
    "sad": -0.8,
    "surprise": 0.3,
}


def sentiment(probs: Mapping[str, float], valence: Mapping[str, float] = DEFAULT_VALENCE) -> float:
    """Expected valence of one face's emotion distribution; stays in [-1, 1]."""
    total = sum(probs.get(e, 0.0) for e in EMOTIONS)
    if total <= 0:
        return 0.0
    return sum(probs.get(e, 0.0) * valence[e] for e in EMOTIONS) / total
