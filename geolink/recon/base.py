"""The reconstruction backend contract and the registry of backends.

A backend turns the drone images of one scene into a raw point cloud in any metric or
similarity frame (the shared post-processing normalises it afterwards). Backends live one per
file (``colmap.py``, ``vggt.py``, ``depth.py``) and are imported only when chosen, so the heavy
optional dependency of one never burdens the others.

Contract for subclasses:
- ``name``: registry name; ``default_conf``: every option with its default. Options given to
  the constructor are merged strictly (an unknown key is a :class:`ConfigError`).
- ``reconstruct(images, work_dir)`` returns a :class:`PointCloud` (xyz (N, 3), optional rgb,
  conf) whose ``info`` holds at least ``images_used`` and ``images_registered``. It raises
  :class:`SceneFailed` for a scene that cannot be reconstructed (the pipeline records the reason
  and moves on) and :class:`GeoLinkError` subclasses for user errors (missing dependency, bad
  files). ``work_dir`` is a scratch folder owned by the call.
- ``parallel_safe``: whether several worker processes may each run a copy (False for GPU models).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from geolink.errors import ConfigError
from geolink.recon.pointcloud import PointCloud
from geolink.registries import RECON_BACKENDS as BACKENDS


class SceneFailed(RuntimeError):
    """A scene could not be reconstructed; the message is the reason stored in the manifest."""


def merge_conf(defaults: dict[str, Any], conf: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """Strictly merge ``conf`` into a copy of ``defaults``.

    Nested dicts are merged recursively, except an empty default dict, which is free-form (its
    keys are checked by whoever consumes it, e.g. the backend for ``backend_conf``).
    """
    out = dict(defaults)
    for key, value in (conf or {}).items():
        if key not in defaults:
            raise ConfigError(
                f"unknown option '{key}' for {where}; available: {', '.join(sorted(defaults))}"
            )
        if isinstance(defaults[key], dict) and defaults[key] and isinstance(value, dict):
            out[key] = merge_conf(defaults[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


class ReconBackend(ABC):
    """Images of one scene -> raw point cloud. See the module docstring for the contract."""

    name: ClassVar[str] = ""
    default_conf: ClassVar[dict[str, Any]] = {}
    parallel_safe: ClassVar[bool] = True

    def __init__(self, conf: dict[str, Any] | None = None):
        self.conf = merge_conf(self.default_conf, conf, f"backend '{self.name}'")

    def check(self) -> None:
        """Raise ``MissingDependencyError`` now if the backend cannot run on this machine."""
        return None

    @abstractmethod
    def reconstruct(self, images: list[Path], work_dir: Path) -> PointCloud:
        """Reconstruct one scene from its image paths; see the module docstring."""


def build_backend(name: str, conf: dict[str, Any] | None = None) -> ReconBackend:
    """Instantiate the backend ``name`` (importing its module only now) with options ``conf``."""
    return BACKENDS.build(name, conf)
