"""Typed configuration: dataclass schemas, YAML presets shipped in ``geolink/configs``, strict
``key=value`` overrides (a mistyped key is an error, never silently ignored).

Resolution order: schema defaults -> preset YAML (which may ``_base_`` another preset) ->
experiment YAML file -> command-line overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from geolink.errors import ConfigError
from geolink.losses.total import LossConfig
from geolink.models.geolink import ModelConfig
from geolink.utils.ranges import out_of_range


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
    root = resources.files("geolink") / "configs"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(path: Path | Any, what: str) -> DictConfig:
    try:
        cfg = OmegaConf.create(path.read_text())
    except OmegaConfBaseException as e:
        raise ConfigError(f"{what} is not valid YAML: {e}") from e
    except Exception as e:  # yaml.YAMLError and friends
        raise ConfigError(f"{what} is not valid YAML: {e}") from e
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{what} must be a mapping")
    return cfg


def _load_preset(name: str, seen: tuple[str, ...] = ()) -> list[DictConfig]:
    path = resources.files("geolink") / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(preset_names())}")
    if name in seen:
        raise ConfigError(f"preset '{name}' includes itself through _base_")
    cfg = _read_yaml(path, f"preset '{name}'")
    base = cfg.pop("_base_", None)
    chain = _load_preset(str(base), (*seen, name)) if base else []
    return [*chain, cfg]


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
    overrides: list[str] | None = None,
    file: str | Path | None = None,
) -> GeoLinkConfig:
    """Build a validated config. Raises ConfigError naming the offending key or value."""
    cfg = OmegaConf.structured(GeoLinkConfig)
    OmegaConf.set_struct(cfg, True)
    # Dataset options are free-form (each reader checks its own names strictly).
    OmegaConf.set_struct(cfg.data.options, False)
    layers: list[tuple[str, DictConfig]] = []
    if preset:
        layers += [(f"preset '{preset}'", c) for c in _load_preset(preset)]
    if file:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        fc = _read_yaml(path, f"config file {path}")
        base = fc.pop("_base_", None)
        if base:
            layers += [(f"preset '{base}'", c) for c in _load_preset(str(base))]
        layers.append((f"config file {path}", fc))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
    if overrides:
        try:
            layers.append(("command-line overrides", OmegaConf.from_dotlist(list(overrides))))
        except OmegaConfBaseException as e:
            raise ConfigError(f"bad override: {e}") from e
    for what, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as e:
            key = getattr(e, "full_key", None) or ""
            msg = str(e.msg).splitlines()[0]
            raise ConfigError(f"{what}: invalid key or value '{key}': {msg}") from e
    return validate(OmegaConf.to_object(cfg))  # type: ignore[arg-type]


def to_yaml(cfg: GeoLinkConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml(text: str) -> GeoLinkConfig:
    """Parse a resolved config (as written into run folders / checkpoints), strictly."""
    base = OmegaConf.structured(GeoLinkConfig)
    OmegaConf.set_struct(base, True)
    OmegaConf.set_struct(base.data.options, False)
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(base, OmegaConf.create(text)))
    except OmegaConfBaseException as e:
        msg = str(e.msg).splitlines()[0]
        raise ConfigError(f"stored config does not match this version of geolink: {msg}") from e
    except ValueError as e:  # not YAML, or YAML that is not a mapping
        raise ConfigError(f"stored config is not a YAML mapping: {e}") from e
    return validate(cfg)  # type: ignore[arg-type]
