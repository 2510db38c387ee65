"""Config files (TOML and YAML) with --set overrides and explicit CLI flags."""

from __future__ import annotations

import pytest

from training.config import ConfigError, build_config


def test_toml_file_then_set_overrides_then_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('model = "dcnn"\ndata = ["a"]\nbatch_size = 32\n[augment]\nflip = false\n')
    cfg = build_config(str(path), ["batch_size=128", "label_smoothing=0.1", "stages=[[0.01, 2]]",
                                   "jit_compile=false"], model="mini_xception")
    assert cfg.model == "mini_xception"  # explicit flag wins
    assert cfg.batch_size == 128 and cfg.label_smoothing == 0.1
    assert cfg.stages == [[0.01, 2]] and cfg.total_epochs() == 2
    assert cfg.augment == {"flip": False} and cfg.jit_compile is False


def test_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: custom_cnn\ndata: one.csv\nschedule: cosine\nepochs: 5\n")
    cfg = build_config(str(path), [])
    assert cfg.data == ["one.csv"] and cfg.total_epochs() == 5


def test_shipped_configs_parse():
    for name in ("moodnet", "fer_dl_stages"):
        cfg = build_config(f"training/configs/{name}.toml", [])
        assert cfg.data and cfg.total_epochs() > 0


@pytest.mark.parametrize("overrides, message", [
    (["nope=1"], "expected KEY=VALUE"),
    (["batch_size=big"], "expected int"),
    (["balance=magic"], "balance='magic'"),
])
def test_bad_overrides(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(None, overrides, data=["x"])


def test_unknown_key_in_file_and_missing_data(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("learning_rate = 1\n")
    with pytest.raises(ConfigError, match="unknown config key"):
        build_config(str(path), [])
    with pytest.raises(ConfigError, match="no training data"):
        build_config(None, [])
