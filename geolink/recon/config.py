"""The reconstruction step's options (``geolink reconstruct``); presets in
``geolink/configs/reconstruct/`` (colmap, depth, vggt, released). No torch here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from geolink.errors import ConfigError
from geolink.recon.base import BACKENDS
from geolink.recon.pointcloud import PostprocessConfig
from geolink.utils import conf as conf_mod

STEP = "reconstruct"  # presets in geolink/configs/reconstruct/


class GroupMode(conf_mod.Choice):
    contiguous = "contiguous"  # consecutive views form a scene
    interleave = "interleave"  # every k-th view


@dataclass
class ReconConfig(PostprocessConfig):
    """Options of the reconstruction step (and, inherited, of the post-processing)."""

    backend: str = "colmap"  # a name of geolink.registries.RECON_BACKENDS
    backend_conf: dict[str, Any] = field(default_factory=dict)  # checked by the backend
    split: str = "train"
    groups: int = 1  # >1: split each location's images into this many scenes (released code: 3)
    group_mode: GroupMode = GroupMode.contiguous
    scenes: list[str] | None = None  # restrict the run to these scene keys (after grouping)
    workers: int = 1
    retry_failed: bool = False
    keep_work: bool = False  # keep the per-scene scratch folders (COLMAP database, models)
    features: bool = True  # cache Point-NN features of the ok scenes at the end
    # COLMAP model import only (the released code used every point of points3D.txt)
    import_min_track_length: int = 0
    import_max_reproj_error: float = float("inf")

    # how the work is run, not what it makes: not compared when a run resumes
    RUNTIME: ClassVar[tuple[str, ...]] = ("workers", "retry_failed", "keep_work", "scenes")


def resolve(
    conf: ReconConfig | Mapping[str, Any] | Sequence[str] | None = None, preset: str | None = None
) -> ReconConfig:
    """The step's config: ``preset`` (a name in ``geolink/configs/reconstruct``), then ``conf``
    (a mapping, or ``key=value`` strings), strictly; an unknown backend lists the known ones."""
    if isinstance(conf, ReconConfig):
        cfg = conf
    else:
        cfg = conf_mod.load(ReconConfig, STEP, preset, overrides=conf or {})
    if cfg.backend not in BACKENDS:
        raise ConfigError(
            f"unknown reconstruction backend '{cfg.backend}'; available: {', '.join(BACKENDS.names())}"
        )
    return cfg
