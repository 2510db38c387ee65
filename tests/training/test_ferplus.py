"""FER+ votes: CSV round trip, one-line errors, dropped unknown/NF majorities, label modes."""

from __future__ import annotations

import numpy as np
import pytest

from moodstream.emotions import EMOTIONS
from tests.training.conftest import write_folders
from training import data as data_mod
from training.__main__ import main
from training.ferplus import (VOTE_COLUMNS, FerPlusError, build_targets, clear_majority, read_votes,
                              seven_class_votes)

HEADER = "path," + ",".join(VOTE_COLUMNS) + ",fer_row,match_err"


def _row(path: str, **votes: int) -> str:
    return ",".join([path, *(str(votes.get(c, 0)) for c in VOTE_COLUMNS), "1", "0.5"])


def _folder(tmp_path, n_per_class=1):
    x = np.full((7 * n_per_class, 48, 48, 1), 100, np.uint8)
    y = np.repeat(np.arange(7), n_per_class).astype(np.int32)
    return write_folders(tmp_path / "train", x, y)


def test_round_trip_maps_columns_and_folds_contempt_into_disgust(tmp_path):
    root = _folder(tmp_path)
    rows = [_row("angry/0000.png", anger=6, contempt=2, neutral=2),
            _row("disgust/0001.png", contempt=5, disgust=2, anger=3),
            _row("fear/0002.png", unknown=6, fear=4),
            _row("happy/0003.png", NF=10)]
    csv = tmp_path / "votes.csv"
    csv.write_text("\n".join([HEADER, *rows]) + "\n")
    votes = read_votes(csv, root)
    assert set(votes.votes) == {"angry/0000.png", "disgust/0001.png"}
    assert votes.dropped == {"unknown": 1, "NF": 1}
    assert votes.excluded == {"fear/0002.png", "happy/0003.png"}
    seven = seven_class_votes(votes.votes["disgust/0001.png"])
    assert seven[EMOTIONS.index("disgust")] == 7 and seven[EMOTIONS.index("angry")] == 3
    assert seven.sum() == 10
    assert clear_majority(votes.votes["angry/0000.png"]) == EMOTIONS.index("angry")
    assert clear_majority(votes.votes["disgust/0001.png"]) == EMOTIONS.index("disgust")


def test_ties_have_no_clear_majority():
    raw = np.zeros(10, np.int32)
    raw[VOTE_COLUMNS.index("happiness")] = raw[VOTE_COLUMNS.index("neutral")] = 5
    assert clear_majority(raw) == -1


def test_missing_column_is_one_line_error(tmp_path):
    csv = tmp_path / "votes.csv"
    csv.write_text("path,neutral,happiness\nangry/0000.png,1,2\n")
    with pytest.raises(FerPlusError) as err:
        read_votes(csv)
    assert "missing column(s)" in str(err.value) and "\n" not in str(err.value)


def test_path_not_in_folder_is_one_line_error(tmp_path, capsys):
    root = _folder(tmp_path)
    csv = tmp_path / "votes.csv"
    csv.write_text("\n".join([HEADER, _row("angry/nope.png", anger=10)]) + "\n")
    with pytest.raises(FerPlusError, match=r"votes.csv:2: angry/nope.png is not in"):
        read_votes(csv, root)


def test_label_modes(tmp_path):
    root = _folder(tmp_path)
    data = data_mod.read_folders(root)
    csv = tmp_path / "votes.csv"
    csv.write_text("\n".join([HEADER, _row("angry/0000.png", neutral=8, anger=2),
                              _row("disgust/0001.png", disgust=5, anger=5),
                              _row("fear/0002.png", unknown=9, fear=1)]) + "\n")
    votes = read_votes(csv)
    hard = build_targets(data.y, data.paths, votes, "fer2013")
    assert len(hard.keep) == 7 and np.array_equal(hard.y.argmax(1), data.y)
    majority = build_targets(data.y, data.paths, votes, "ferplus_majority")
    assert list(majority.keep) == [0]  # disgust/0001 ties, fear/0002 is unknown, others uncovered
    assert majority.y[0].argmax() == EMOTIONS.index("neutral")
    dist = build_targets(data.y, data.paths, votes, "ferplus_votes")
    assert list(dist.keep) == [0, 1]
    np.testing.assert_allclose(dist.y.sum(1), 1.0)
    mix = build_targets(data.y, data.paths, votes, "mix", fer_weight=0.5)
    assert 2 not in mix.keep and len(mix.keep) == 6  # the unknown-majority image is dropped
    np.testing.assert_allclose(mix.y[0][[EMOTIONS.index("angry"), EMOTIONS.index("neutral")]], [0.6, 0.4])
    np.testing.assert_allclose(mix.y.sum(1), 1.0, atol=1e-6)
    with pytest.raises(FerPlusError):
        build_targets(data.y, data.paths, None, "mix")


def test_train_cli_reports_missing_votes_file_in_one_line(tmp_path, capsys):
    root = _folder(tmp_path)
    code = main(["train", "--data", str(root), "--set", "label_mode=mix", "--set",
                 f"ferplus_train={tmp_path / 'missing.csv'}", "--epochs", "1",
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: FER+ file not found") and "\n" not in err


def _votes_for(root, tmp_path, name):
    """A FER+ CSV agreeing with each folder label (8 votes) plus 2 neutral votes."""
    column = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
              "neutral": "neutral", "sad": "sadness", "surprise": "surprise"}
    rows = [HEADER]
    for path in sorted(root.rglob("*.png")):
        votes = {column[path.parent.name]: 8}
        votes["neutral"] = votes.get("neutral", 0) + 2
        rows.append(_row(f"{path.parent.name}/{path.name}", **votes))
    csv = tmp_path / name
    csv.write_text("\n".join(rows) + "\n")
    return csv


@pytest.mark.slow
def test_mix_training_and_ferplus_evaluation_end_to_end(tiny_run, tmp_path, capsys):
    import csv as csv_mod
    import json
    train_csv = _votes_for(tiny_run["train"], tmp_path, "train.csv")
    val_csv = _votes_for(tiny_run["val"], tmp_path, "val.csv")
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_run["train"]), "--val", str(tiny_run["val"]),
                 "--run-dir", str(run), "--set", "width=0.25", "--set", "batch_size=16",
                 "--set", "jit_compile=false", "--set", "schedule=cosine", "--epochs", "1",
                 "--set", "label_mode=mix", "--set", f"ferplus_train={train_csv}",
                 "--set", f"ferplus_val={val_csv}", "--set", "camera_corruption=0.5"]) == 0
    assert "resume with the same command" in capsys.readouterr().out
    meta = json.loads((run / "run_config.json").read_text())
    assert meta["targets"]["kept"] == 42 and meta["config"]["label_mode"] == "mix"
    with (run / "history.csv").open() as fh:
        row = next(csv_mod.DictReader(fh))
    assert 0.0 <= float(row["val_ferplus_accuracy"]) <= 1.0
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(run / "best.keras"), "--data", str(tiny_run["val"]),
                 "--ferplus", str(val_csv), "--corruptions", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert {"accuracy", "n", "per_class", "confusion_matrix"} <= set(result)  # keys kept
    assert result["ferplus"]["n"] == 21 and 0.0 <= result["ferplus"]["accuracy"] <= 1.0
    assert 0.0 <= result["ece"] <= 1.0
    assert [r["corruption"] for r in result["corruptions"]] == [
        "jpeg_q30", "blur_sigma1", "brightness_x0.6", "brightness_x1.4", "downup_20px",
        "rotate_15deg", "shift_6px"]
    assert "FER+ majority accuracy" in printed and "downup_20px" in printed
