"""Datasets: benchmark readers (native layouts), torch datasets, transforms, sampler, weather.

``build_dataset(name, root, **options)`` returns a :class:`CrossViewDataset`; names are in
``DATASETS``. Readers are imported only when chosen.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from geolink.data.base import CrossViewDataset, Pair, RetrievalSet
from geolink.errors import ConfigError
from geolink.utils.registry import Registry

DATASETS: Registry[CrossViewDataset] = Registry("dataset")


@DATASETS.register("university1652")
def _university1652(root: str | Path, **options: Any) -> CrossViewDataset:
    from geolink.data.university1652 import University1652

    return _construct(University1652, root, options)


@DATASETS.register("sues200")
def _sues200(root: str | Path, **options: Any) -> CrossViewDataset:
    from geolink.data.sues200 import SUES200

    return _construct(SUES200, root, options)


@DATASETS.register("denseuav")
def _denseuav(root: str | Path, **options: Any) -> CrossViewDataset:
    from geolink.data.denseuav import DenseUAV

    return _construct(DenseUAV, root, options)


@DATASETS.register("folder")
def _folder(root: str | Path, **options: Any) -> CrossViewDataset:
    from geolink.data.folder import FolderDataset

    return _construct(FolderDataset, root, options)


@DATASETS.register("synthetic")
def _synthetic(root: str | Path, **options: Any) -> CrossViewDataset:
    from geolink.data.synthetic_dataset import SyntheticDataset

    return _construct(SyntheticDataset, root, options)


def _construct(cls: type, root: str | Path, options: dict[str, Any]) -> CrossViewDataset:
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "root")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for dataset '{cls.name}'; "
            f"available: {', '.join(allowed) or 'none'}"
        )
    return cls(root, **options)


def build_dataset(name: str, root: str | Path, **options: Any) -> CrossViewDataset:
    """Build a dataset reader by name; unknown names or options raise :class:`ConfigError`."""
    return DATASETS.build(name, root, **options)


__all__ = ["DATASETS", "CrossViewDataset", "Pair", "RetrievalSet", "build_dataset"]
