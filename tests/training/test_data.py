"""Readers round-trip folders, CSV and CK+ aliases; bad datasets fail with one clear message."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from moodstream.emotions import EMOTIONS
from tests.training.conftest import PER_CLASS, write_csv, write_folders
from training import data as data_mod
from training.data import DatasetError


def _sorted(ds):
    order = np.lexsort((ds.x.reshape(len(ds), -1).sum(axis=1), ds.y))
    return ds.x[order], ds.y[order]


def test_folders_round_trip_exactly(tmp_path, faces):
    x, y = faces
    ds = data_mod.read_folders(write_folders(tmp_path, x, y))
    assert ds.x.dtype == np.uint8 and ds.x.shape == (len(y), 48, 48, 1)
    got_x, got_y = _sorted(ds)
    want_x, want_y = _sorted(data_mod.Dataset(x, y))
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(got_x, want_x)
    assert ds.class_counts() == {e: PER_CLASS for e in EMOTIONS}


def test_csv_round_trip_and_usage_filter(tmp_path, faces):
    x, y = faces
    usage = ["Training" if i % 3 else "PublicTest" for i in range(len(y))]
    path = write_csv(tmp_path / "fer2013.csv", x, y, usage)
    everything = data_mod.read_dataset(path)
    np.testing.assert_array_equal(everything.x, x)
    np.testing.assert_array_equal(everything.y, y)
    public = data_mod.read_dataset(path, "PublicTest")
    assert len(public) == usage.count("PublicTest")
    assert len(data_mod.read_dataset(path, "val")) == len(public)  # alias of PublicTest


def test_ck_plus_aliases_and_contempt_skipped_with_warning(tmp_path, faces, caplog):
    x, y = faces
    aliases = {"angry": "anger", "sad": "sadness", "happy": "happiness"}
    write_folders(tmp_path, x, y, aliases)
    (tmp_path / "contempt").mkdir()  # CK+'s eighth class: not one of ours
    for i in range(3):
        (tmp_path / "contempt" / f"{i}.png").write_bytes((tmp_path / "anger" / "0000.png").read_bytes())
    with caplog.at_level(logging.WARNING):
        ds = data_mod.read_folders(tmp_path)
    assert ds.class_counts()["angry"] == PER_CLASS and ds.class_counts()["happy"] == PER_CLASS
    assert len(ds) == len(y)
    assert ds.skipped["unknown_class"] == 3
    assert "skipping class folder 'contempt'" in caplog.text


def test_larger_size_and_three_channels_for_transfer_models(tmp_path, faces):
    x, y = faces
    ds = data_mod.read_folders(write_folders(tmp_path, x, y), size=64, channels=3)
    assert ds.x.shape == (len(y), 64, 64, 3)


def test_merge_split_weights_and_resampling(faces):
    x, y = faces
    ds = data_mod.Dataset(x, y)
    merged = data_mod.merge([ds, ds])
    assert len(merged) == 2 * len(ds)
    train, val = data_mod.stratified_split(merged, 0.25, seed=1)
    assert len(train) + len(val) == len(merged)
    assert set(val.class_counts().values()) == {3}  # 25% of 12 from every class
    unbalanced = data_mod.Dataset(x[: PER_CLASS + 2], y[: PER_CLASS + 2])  # 6 angry, 2 disgust
    weights = data_mod.class_weights(unbalanced.y)
    assert weights[1] == pytest.approx(3 * weights[0]) and weights[2] == 0.0
    over = data_mod.resample(unbalanced, "oversample", seed=0)
    under = data_mod.resample(unbalanced, "undersample", seed=0)
    assert over.class_counts()["disgust"] == PER_CLASS == over.class_counts()["angry"]
    assert under.class_counts()["angry"] == 2 == under.class_counts()["disgust"]


def test_fingerprint_identifies_content(faces):
    x, y = faces
    a = data_mod.Dataset(x, y).fingerprint()
    x2 = x.copy()
    x2[0, 0, 0, 0] ^= 1
    assert a == data_mod.Dataset(x.copy(), y.copy()).fingerprint()
    assert a != data_mod.Dataset(x2, y).fingerprint()


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        data_mod.read_dataset(tmp_path / "nope")


def test_empty_class_folder(tmp_path, faces):
    write_folders(tmp_path, *faces)
    (tmp_path / "fear").mkdir(exist_ok=True)
    for f in (tmp_path / "fear").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="fear has no images"):
        data_mod.read_folders(tmp_path)


def test_corrupt_image_is_skipped_and_counted(tmp_path, faces):
    x, y = faces
    write_folders(tmp_path, x, y)
    (tmp_path / "happy" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    ds = data_mod.read_folders(tmp_path)
    assert len(ds) == len(y)
    assert ds.skipped["corrupt_image"] == 1


def test_wrong_csv_columns(tmp_path, faces):
    path = write_csv(tmp_path / "bad.csv", *faces, header="label,image,Usage")
    with pytest.raises(DatasetError, match=r"missing CSV column\(s\) \['emotion', 'pixels'\]"):
        data_mod.read_dataset(path)


def test_pixel_count_not_2304(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("emotion,pixels,Usage\n3," + " ".join(["7"] * 2000) + ",Training\n")
    with pytest.raises(DatasetError, match="2000 pixels, expected 2304"):
        data_mod.read_dataset(path)
