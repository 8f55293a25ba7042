"""Parameters of the synthetic benchmark; named presets in ``geolink/configs/synth/`` (``tiny``,
``demo``, ``bench``), resolved by :mod:`geolink.utils.conf`.

Every parameter is written into ``synth.json``; a generated folder is only resumed when its
parameters are identical. Overrides are strict: an unknown name is a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from geolink.data.synthetic.styles import get_style
from geolink.errors import ConfigError
from geolink.utils import conf

GENERATOR_VERSION = "1.0"


class DroneMode(conf.Choice):
    orbit = "orbit"  # University-1652-like rings around the target
    fixed_heights = "fixed_heights"  # SUES-200-like: one ring per altitude


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
    drone_mode: DroneMode = DroneMode.orbit
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

    RUNTIME: ClassVar[tuple[str, ...]] = ("workers",)  # does not change the images

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


STEP = "synth"  # presets in geolink/configs/synth/: tiny, demo, bench


def resolve_params(preset: str = "tiny", **overrides: Any) -> SynthParams:
    """The preset's parameters with ``overrides`` applied (unknown names raise ConfigError)."""
    p = conf.load(SynthParams, STEP, preset, overrides=overrides)
    if p.train_locations < 1 or p.test_locations < 1:
        raise ConfigError("train_locations and test_locations must be >= 1")
    if p.other_train_locations == 0 or p.other_train_locations < -1:
        raise ConfigError("other_train_locations must be >= 1 (or -1: as train_locations)")
    if len(set(p.regions)) != len(p.regions):
        raise ConfigError(f"region names must be unique, got {list(p.regions)}")
    for name in p.regions:
        get_style(name)  # an unknown style raises ConfigError listing the styles
    return p


__all__ = ["GENERATOR_VERSION", "STEP", "DroneMode", "SynthParams", "resolve_params"]
