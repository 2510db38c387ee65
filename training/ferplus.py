"""FER+ annotations: ten crowd votes per FER2013 image, and the training targets built from them.

The CSV (Microsoft FERPlus, joined to our image files by pixel content) has the columns
`path` (relative to the split folder), the vote counts `neutral, happiness, surprise,
sadness, anger, disgust, fear, contempt, unknown, NF`, then `fer_row` and `match_err`.

Contempt is not one of moodstream's seven emotions. Its votes are counted as **disgust**:
both are expressions of rejection, FER2013's own labellers filed contempt-like faces under
disgust, and it keeps the rare votes instead of throwing them away. Images whose FER+
majority is `unknown` or `NF` (not a face) are dropped and counted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moodstream.emotions import EMOTIONS

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
# FER+ vote column -> moodstream emotion (contempt -> disgust: see the module docstring).
VOTE_TO_EMOTION = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise",
                   "sadness": "sad", "anger": "angry", "disgust": "disgust", "fear": "fear",
                   "contempt": "disgust"}
NOT_AN_EMOTION = ("unknown", "NF")
LABEL_MODES = ("fer2013", "ferplus_majority", "ferplus_votes", "mix")

# (10 vote columns) @ _TO_SEVEN -> (7 emotions), contempt folded into disgust, unknown/NF out.
_TO_SEVEN = np.zeros((len(VOTE_COLUMNS), len(EMOTIONS)), np.float32)
for _col, _emotion in VOTE_TO_EMOTION.items():
    _TO_SEVEN[VOTE_COLUMNS.index(_col), EMOTIONS.index(_emotion)] = 1.0


class FerPlusError(ValueError):
    """A FER+ file that cannot be used; the message says why in one line."""


@dataclass
class FerPlusVotes:
    """Votes for the images of one split folder, keyed by path relative to it."""

    votes: dict[str, np.ndarray]  # path -> (10,) int vote counts
    dropped: dict[str, int] = field(default_factory=dict)  # unknown / NF majorities
    excluded: set[str] = field(default_factory=set)  # their paths

    def __len__(self) -> int:
        return len(self.votes)


def seven_class_votes(raw: np.ndarray) -> np.ndarray:
    """(..., 10) vote counts -> (..., 7) in EMOTIONS order, contempt counted as disgust."""
    return np.asarray(raw, np.float32) @ _TO_SEVEN


def not_an_emotion(raw: np.ndarray) -> bool:
    """True when unknown or NF has at least as many votes as the leading emotion."""
    other = max(raw[VOTE_COLUMNS.index(c)] for c in NOT_AN_EMOTION)
    return bool(other >= seven_class_votes(raw).max())


def clear_majority(raw: np.ndarray) -> int:
    """Index of the emotion with strictly the most votes (over unknown/NF too), or -1."""
    seven = seven_class_votes(raw)
    top = seven.max()
    if not_an_emotion(raw) or int((seven == top).sum()) != 1:
        return -1
    return int(seven.argmax())


def read_votes(csv_path: str | Path, folder: str | Path | None = None) -> FerPlusVotes:
    """Read a FER+ CSV; with `folder`, every path must name an image in it."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FerPlusError(f"FER+ file not found: {csv_path}")
    votes: dict[str, np.ndarray] = {}
    excluded: set[str] = set()
    dropped = {name: 0 for name in NOT_AN_EMOTION}
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("path", *VOTE_COLUMNS) if c not in (reader.fieldnames or [])]
        if missing:
            raise FerPlusError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            raw = _vote_row(csv_path, line, row)
            path = row["path"].strip()
            if folder is not None and not (Path(folder) / path).is_file():
                raise FerPlusError(f"{csv_path}:{line}: {path} is not in {folder}")
            if not_an_emotion(raw):
                dropped["NF" if raw[-1] >= raw[-2] else "unknown"] += 1
                excluded.add(path)
                continue
            votes[path] = raw
    return FerPlusVotes(votes, dropped, excluded)


def _vote_row(csv_path: Path, line: int, row: dict) -> np.ndarray:
    try:
        raw = np.asarray([int(row[c]) for c in VOTE_COLUMNS], np.int32)
    except (TypeError, ValueError):
        raise FerPlusError(f"{csv_path}:{line}: vote counts must be integers") from None
    if (raw < 0).any() or raw.sum() == 0:
        raise FerPlusError(f"{csv_path}:{line}: vote counts must be >= 0 with at least one vote")
    return raw


def align(paths: list[str], votes: FerPlusVotes) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (7,) vote distribution (zeros when it has no usable row) and clear majority (-1)."""
    dist = np.zeros((len(paths), len(EMOTIONS)), np.float32)
    majority = np.full(len(paths), -1, np.int32)
    for i, path in enumerate(paths):
        raw = votes.votes.get(path)
        if raw is None:
            continue
        seven = seven_class_votes(raw)
        dist[i] = seven / seven.sum()
        majority[i] = clear_majority(raw)
    return dist, majority


@dataclass(frozen=True)
class Targets:
    """Training targets for the kept images: `keep` indexes the dataset, `y` is (n, 7)."""

    keep: np.ndarray
    y: np.ndarray
    counts: dict[str, int]


def build_targets(labels: np.ndarray, paths: list[str] | None, votes: FerPlusVotes | None,
                  mode: str, fer_weight: float = 0.5) -> Targets:
    """Soft or hard (n, 7) targets for a label mode.

    fer2013: one-hot folder labels. ferplus_majority: one-hot FER+ clear majority (images
    without one are dropped). ferplus_votes: the normalised FER+ votes. mix: `fer_weight`
    x one-hot folder label + (1 - fer_weight) x FER+ votes; images FER+ does not cover keep
    their folder label alone. Images whose FER+ majority is unknown/NF are dropped in every
    FER+ mode (read_votes already left them out).
    """
    if mode not in LABEL_MODES:
        raise FerPlusError(f"label_mode {mode!r}: choose one of {', '.join(LABEL_MODES)}")
    onehot = np.eye(len(EMOTIONS), dtype=np.float32)[labels]
    if mode == "fer2013":
        return Targets(np.arange(len(labels)), onehot, {"kept": len(labels)})
    if votes is None or paths is None:
        raise FerPlusError(f"label_mode {mode!r} needs FER+ votes (set ferplus_train)")
    dist, majority = align(paths, votes)
    covered = dist.sum(axis=1) > 0
    if mode == "ferplus_majority":
        keep = np.flatnonzero(majority >= 0)
        y = np.eye(len(EMOTIONS), dtype=np.float32)[majority[keep]]
    elif mode == "ferplus_votes":
        keep = np.flatnonzero(covered)
        y = dist[keep]
    else:
        excluded = np.asarray([p in votes.excluded for p in paths], bool)
        keep = np.flatnonzero(covered | ~excluded)
        y = np.where(covered[keep, None], fer_weight * onehot[keep] + (1 - fer_weight) * dist[keep],
                     onehot[keep])
    counts = {"kept": int(len(keep)), "dropped": int(len(labels) - len(keep)),
              "without_ferplus_row": int((~covered).sum()), **{f"csv_{k}": v for k, v in votes.dropped.items()}}
    return Targets(keep, y.astype(np.float32), counts)
