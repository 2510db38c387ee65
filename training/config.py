"""Training configuration: a TOML or YAML file, overridden by CLI `--set key=value`."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.models import DEFAULT_AUGMENT


class ConfigError(ValueError):
    pass


@dataclass
class TrainConfig:
    model: str = "moodnet"
    data: list[str] = field(default_factory=list)  # one or more folder trees / CSVs, merged
    data_usage: str | None = None  # CSV Usage filter for `data` (e.g. Training)
    val: str | None = None  # folder or CSV; None means a stratified holdout of `data`
    val_usage: str | None = None
    holdout: float = 0.1
    input_size: int = 48
    channels: int = 1
    width: float = 1.0
    dropout: float = 0.3
    weights: str = "none"  # transfer models: imagenet | none | path
    # A warm restart: a .keras checkpoint of the same architecture, or "run:<run_name>" for the
    # best.keras of an earlier run in the runs folder.
    init_from: str = ""
    augment: dict = field(default_factory=lambda: dict(DEFAULT_AUGMENT))
    # Labels (training.ferplus): fer2013 | ferplus_majority | ferplus_votes | mix
    label_mode: str = "fer2013"
    ferplus_train: str | None = None  # FER+ votes CSV for `data` (one folder)
    ferplus_val: str | None = None  # FER+ votes CSV for `val`: per-epoch val_ferplus_accuracy
    fer_label_weight: float = 0.5  # mix: weight of the one-hot FER2013 label against the votes
    camera_corruption: float = 0.0  # share of training faces given a random camera degradation
    mixup: float = 0.0  # Beta(alpha, alpha) mixup strength; 0 disables
    label_smoothing: float = 0.0
    balance: str = "none"  # none | class_weights | oversample | undersample
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0
    ema: float = 0.0  # momentum of an exponential moving average of the weights; 0 disables
    schedule: str = "stages"  # stages | cosine | plateau
    stages: list[list[float]] = field(default_factory=lambda: [[1e-3, 100], [1e-4, 30], [1e-5, 20]])
    lr: float = 1e-3  # cosine / plateau start
    epochs: int = 150  # cosine / plateau length
    warmup_epochs: int = 0
    early_stopping_patience: int = 30
    plateau_patience: int = 8
    precision: str = "float32"  # float32 | mixed_bfloat16 | mixed_float16
    jit_compile: bool = True
    seed: int = 1337
    run_dir: str = ""  # "" = $XDG_CACHE_HOME/moodstream/runs/<run_name>, outside the work tree
    run_name: str = "latest"

    def total_epochs(self) -> int:
        if self.schedule == "stages":
            return int(sum(n for _, n in self.stages))
        return self.epochs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CHOICES = {
    "balance": {"none", "class_weights", "oversample", "undersample"},
    "schedule": {"stages", "cosine", "plateau"},
    "precision": {"float32", "mixed_bfloat16", "mixed_float16"},
    "optimizer": {"adam", "adamw"},
    "label_mode": {"fer2013", "ferplus_majority", "ferplus_votes", "mix"},
}


def load_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot parse {path}: {exc}") from None


def _coerce(name: str, raw: str, current: Any) -> Any:
    if isinstance(current, (list, dict)) or current is None:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    if isinstance(current, bool):
        return raw.lower() in {"1", "true", "yes", "on"}
    try:
        return type(current)(raw)
    except ValueError:
        raise ConfigError(f"--set {name}={raw}: expected {type(current).__name__}") from None


def build_config(file: str | None, overrides: list[str], **explicit: Any) -> TrainConfig:
    cfg = TrainConfig()
    values = load_file(file) if file else {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(sorted(unknown))}")
    for key, value in values.items():
        setattr(cfg, key, value)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY one of the config keys")
        setattr(cfg, key, _coerce(key, raw, getattr(cfg, key)))
    for key, value in explicit.items():
        if value is not None:
            setattr(cfg, key, value)
    if isinstance(cfg.data, str):
        cfg.data = [cfg.data]
    for key, allowed in _CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{key}={getattr(cfg, key)!r}: choose one of {sorted(allowed)}")
    if not cfg.data:
        raise ConfigError("no training data: pass --data DIR_OR_CSV or set `data` in the config")
    if cfg.label_mode != "fer2013" and not cfg.ferplus_train:
        raise ConfigError(f"label_mode={cfg.label_mode!r} needs ferplus_train (a FER+ votes CSV)")
    if cfg.ferplus_train and len(cfg.data) != 1:
        raise ConfigError("ferplus_train needs exactly one training folder in `data`")
    if not 0.0 <= cfg.fer_label_weight <= 1.0 or not 0.0 <= cfg.camera_corruption <= 1.0:
        raise ConfigError("fer_label_weight and camera_corruption must be within [0, 1]")
    if not 0.0 <= cfg.ema < 1.0:
        raise ConfigError(f"ema={cfg.ema}: the EMA momentum must be within [0, 1)")
    if cfg.init_from.startswith("run:"):
        from training.cache import cache_root
        run_name, _, checkpoint = cfg.init_from[4:].partition("/")  # run:NAME[/FILE]
        cfg.init_from = str(cache_root() / "runs" / run_name / (checkpoint or "best.keras"))
    if cfg.init_from and not Path(cfg.init_from).expanduser().is_file():
        raise ConfigError(f"init_from: no checkpoint at {cfg.init_from}")
    if not cfg.run_dir:
        from training.cache import cache_root
        cfg.run_dir = str(cache_root() / "runs" / cfg.run_name)
    return cfg
