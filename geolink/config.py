"""Training configuration: dataclass schemas, YAML presets in ``geolink/configs/train``, strict
``key=value`` overrides (a mistyped key is an error, never silently ignored).

Resolution order: schema defaults -> preset YAML (which may ``_base_`` another preset) ->
experiment YAML file -> command-line overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolink.errors import ConfigError
from geolink.losses.total import LossConfig
from geolink.models.geolink import ModelConfig
from geolink.utils import conf
from geolink.utils.ranges import out_of_range

STEP = "train"  # presets in geolink/configs/train/


@dataclass
class DataConfig:
    dataset: str = "synthetic"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # passed to build_dataset
    points: str | None = None  # reconstruction folder holding point_features.safetensors
    num_workers: int = 2
    # train on this many training locations (a subset drawn with train.seed); 0 = all
    train_locations: int = 0


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 8
    optimizer: str = "adamw"  # adamw (paper) | sgd (released code)
    lr: float = 6e-4
    min_lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_epochs: float = 0.1
    grad_clip: float = 100.0  # clip_grad_value, as Sample4Geo / CV-Cities / GeoLink
    amp: bool = True  # bf16 autocast where the device supports it
    seed: int = 1
    device: str = "auto"
    log_every: int = 10
    max_steps_per_epoch: int = 0  # 0 = full epoch; >0 caps steps (CPU demos)
    # validate (drone->satellite R@1, see `select`) every N epochs (and after the last); 0 = never
    eval_every: int = 1
    # which weights best.safetensors holds: val = the best epoch on a validation split held out
    # from the training locations (val_fraction of them, drawn with train.seed); last = the
    # last epoch (no selection); test = the best epoch on the dataset's own test split (what
    # the authors' code does: it reads test data, so its numbers are optimistic)
    select: str = "val"
    val_fraction: float = 0.1
    eval_max_queries: int = 0  # 0 = all queries; >0 = a fixed, evenly spaced subset (speed)
    skip_corrupt: bool = False  # replace unreadable training images (reported) instead of stopping
    # full: Sample4Geo's photometric + dropout augmentation and the geometric ones;
    # geometric: only the joint flip and the satellite's 90-degree rotations
    augment: str = "full"
    # run the frozen trunk (model.image.frozen_blocks) once per training image and geometric
    # variant, and train on the cached activations (needs augment=geometric)
    frozen_cache: bool = False
    frozen_cache_dir: str | None = None  # default: <run>/frozen_cache; share it between runs


@dataclass
class GeoLinkConfig:
    name: str = "geolink"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def preset_names() -> list[str]:
    return conf.preset_names(STEP)


def validate(cfg: GeoLinkConfig) -> GeoLinkConfig:
    """Check every option's range (:data:`RULES`) and the device; ``ConfigError`` lists every
    bad value with what was expected."""
    import re
    from dataclasses import asdict

    bad = out_of_range(asdict(cfg))
    if cfg.train.min_lr > cfg.train.lr:
        bad.append(f"train.min_lr={cfg.train.min_lr!r} is above train.lr={cfg.train.lr!r}")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(cfg.train.device)):
        bad.append(f"train.device={cfg.train.device!r} (expected auto, cpu, cuda, cuda:N or mps)")
    if bad:
        raise ConfigError("invalid option(s): " + "; ".join(bad))
    return cfg


def load_config(
    preset: str | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    file: str | Path | None = None,
) -> GeoLinkConfig:
    """Build a validated config. Raises ConfigError naming the offending key or value."""
    cfg = conf.load(GeoLinkConfig, STEP, preset, file=file, overrides=overrides)
    return validate(cfg)


def to_yaml(cfg: GeoLinkConfig) -> str:
    return conf.dump(cfg)


def from_yaml(text: str) -> GeoLinkConfig:
    """Parse a resolved config (as written into run folders / checkpoints), strictly."""
    try:
        cfg = conf.parse(GeoLinkConfig, text, "stored config")
    except ConfigError as e:
        raise ConfigError(f"stored config does not match this version of geolink: {e}") from e
    return validate(cfg)
