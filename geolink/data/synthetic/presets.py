"""Parameters of the synthetic benchmark and the named presets ``tiny``, ``demo``, ``bench``.

Every parameter is written into ``synth.json``; a generated folder is only resumed when its
parameters are identical. Overrides are strict: an unknown name is a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from geolink.data.synthetic.styles import get_style
from geolink.errors import ConfigError

GENERATOR_VERSION = "1.0"


@dataclass(frozen=True)
class SynthParams:
    regions: tuple[str, ...] = ("campus", "suburb", "downtown")
    train_locations: int = 2  # per region
    test_locations: int = 2  # per region
    # training locations in every region after the first (-1: train_locations); benchmarks
    # that train on the first region and only test on the others need few there
    other_train_locations: int = -1
    drone_size: int = 192  # drone images are square, pixels
    satellite_size: int = 192
    footprint_m: float = 180.0  # ground side length of a satellite tile, metres
    scene_half_m: float = 200.0  # detailed ground around a location: [-half, half]^2
    ground_px: int = 1024  # ground texture resolution over 2 * scene_half_m
    hfov_deg: float = 60.0  # drone horizontal field of view
    drone_mode: str = "orbit"  # "orbit" (U1652-like rings) | "fixed_heights" (SUES-like)
    # orbit mode: rings of (altitude m, radius m, views); consecutive rings are staggered
    rings: tuple[tuple[float, float, int], ...] = ((150.0, 135.0, 4), (125.0, 110.0, 4))
    # fixed_heights mode: one ring per altitude; radius = altitude * sues_radius_ratio
    heights: tuple[float, ...] = (150.0, 200.0, 250.0, 300.0)
    views_per_height: int = 8
    sues_radius_ratio: float = 0.6
    look_at_height_ratio: float = 0.3  # cameras aim this far up the target building
    location_spacing_m: float = 600.0  # distance between locations on the region's map
    satellite_height_m: float = 1000.0
    shadow_size: int = 2048
    jpeg_quality: int = 92
    write_depth: bool = True
    workers: int = 1  # worker processes, each with its own GL context

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: _listify(v) for k, v in d.items()}

    @property
    def n_locations(self) -> int:
        return self.train_locations + self.test_locations

    def region_train_locations(self, region: int) -> int:
        """Training locations of region number ``region`` (0 = the first)."""
        if region > 0 and self.other_train_locations >= 0:
            return self.other_train_locations
        return self.train_locations

    def drone_rings(self) -> list[tuple[float, float, int]]:
        if self.drone_mode == "orbit":
            return [tuple(r) for r in self.rings]  # type: ignore[misc]
        r = self.sues_radius_ratio
        return [(h, h * r, self.views_per_height) for h in self.heights]


def _listify(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_listify(x) for x in v]
    return v


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {},
    # the demo's graded domain shift: train on campus; campus_autumn is the near target (same
    # style, new area, autumn palette), suburb and downtown the far ones. 200 training locations
    # in campus (see docs/synthetic.md for where same-area accuracy stops improving), 50 test
    # locations (tiles) everywhere: chance R@1 = 2 %.
    "demo": {
        "regions": ("campus", "campus_autumn", "suburb", "downtown"),
        "train_locations": 200,
        "other_train_locations": 1,
        "test_locations": 50,
        "drone_size": 160,
        "satellite_size": 160,
        "rings": ((160.0, 140.0, 4), (115.0, 100.0, 4)),
        "workers": 2,
    },
    "bench": {
        "regions": ("campus", "suburb", "downtown", "campus_2", "suburb_2", "downtown_2"),
        "train_locations": 60,
        "test_locations": 40,
        "drone_size": 384,
        "satellite_size": 384,
        "ground_px": 1536,
        "rings": ((180.0, 150.0, 10), (140.0, 115.0, 10), (105.0, 85.0, 10)),
        "workers": 2,
    },
}


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)
    if isinstance(default, (int, float)) and not isinstance(value, (tuple, list)):
        try:
            return type(default)(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"synth parameter '{name}': expected {type(default).__name__}") from e
    if isinstance(default, tuple):
        seq = value.split(",") if isinstance(value, str) else value
        if default and isinstance(default[0], (int, float)) and not isinstance(default[0], bool):
            try:  # a numeric range such as altitude_m=100,200
                return tuple(type(default[0])(x) for x in seq)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"parameter '{name}': expected numbers, got {value!r}") from e
        return tuple(tuple(x) if isinstance(x, list) else x for x in seq)
    return value


def apply_preset(
    cls: type, presets: dict[str, dict[str, Any]], preset: str, what: str, **overrides
):
    """``cls()`` with the named preset and then ``overrides`` applied, values coerced to the
    fields' types; an unknown preset or field name is a ConfigError listing the known ones."""
    if preset not in presets:
        raise ConfigError(f"unknown {what} preset '{preset}'; available: {', '.join(presets)}")
    fields = [f.name for f in dataclasses.fields(cls)]
    merged = {**presets[preset], **overrides}
    unknown = sorted(set(merged) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown {what} parameter(s) {', '.join(unknown)}; available: {', '.join(fields)}"
        )
    base = cls()
    values = {k: _coerce(k, v, getattr(base, k)) for k, v in merged.items()}
    return dataclasses.replace(base, **values)


def resolve_params(preset: str = "tiny", **overrides: Any) -> SynthParams:
    """The preset's parameters with ``overrides`` applied (unknown names raise ConfigError)."""
    p = apply_preset(SynthParams, PRESETS, preset, "synth", **overrides)
    if p.drone_mode not in ("orbit", "fixed_heights"):
        raise ConfigError(f"drone_mode must be 'orbit' or 'fixed_heights', got '{p.drone_mode}'")
    if p.train_locations < 1 or p.test_locations < 1:
        raise ConfigError("train_locations and test_locations must be >= 1")
    if p.other_train_locations == 0 or p.other_train_locations < -1:
        raise ConfigError("other_train_locations must be >= 1 (or -1: as train_locations)")
    if len(set(p.regions)) != len(p.regions):
        raise ConfigError(f"region names must be unique, got {list(p.regions)}")
    for name in p.regions:
        get_style(name)  # an unknown style raises ConfigError listing the styles
    return p


__all__ = ["GENERATOR_VERSION", "PRESETS", "SynthParams", "resolve_params"]
