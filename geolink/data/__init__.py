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
from geolink.registries import DATASETS


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
    return _construct(DATASETS.get(name), root, options)


__all__ = ["DATASETS", "CrossViewDataset", "Pair", "RetrievalSet", "build_dataset"]
