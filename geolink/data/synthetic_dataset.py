"""``synthetic``: the generated benchmark, several regions in the University-1652 layout.

Each region folder is read with the University-1652 reader; location ids are namespaced as
``<region>/<loc>`` so that regions can be combined without label clashes. Scene keys are the
same namespaced ids (so point clouds land in ``points/<region>/<loc>.ply``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from geolink.data.base import (
    CrossViewDataset,
    LayoutReport,
    Pair,
    RetrievalSet,
    as_list,
    parse_directions,
)
from geolink.data.university1652 import University1652
from geolink.errors import DataError

LAYOUT = """\
  ROOT/
    synth.json                         ({"regions": [names], "seed", "preset", "params", ...})
    <region>/                          (one per region, each in the University-1652 layout)
      train/drone/<loc>/...  train/satellite/<loc>/<loc>.jpg
      test/query_drone/<loc>/... test/gallery_satellite/<loc>/...
      test/query_satellite/<loc>/... test/gallery_drone/<loc>/...
      cameras/<loc>.json  depth/<loc>/<image stem>.npy  gps.csv  synth.json
  Generate it with: geolink synth --preset demo --out ROOT"""


class SyntheticDataset(CrossViewDataset):
    """Regions of a ``geolink synth`` output folder. Option ``regions``: names (default all)."""

    name = "synthetic"
    layout = LAYOUT

    def __init__(self, root: str | Path, regions: str | Sequence[str] | None = None):
        super().__init__(root)
        meta_path = self.root / "synth.json"
        if not meta_path.is_file():
            raise DataError(
                f"synthetic root {self.root} has no synth.json.\nExpected layout:\n{LAYOUT}"
            )
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if "regions" not in self.meta and "region" in self.meta:
                raise DataError(
                    f"{self.root} is one region of a synthetic benchmark (its synth.json has no "
                    f'"regions" list): pass its parent folder, or read it as university1652'
                )
            available = [str(r) for r in self.meta["regions"]]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(
                f"{meta_path} is malformed ({type(e).__name__}: {e}); expected JSON with a "
                '"regions" list'
            ) from None
        chosen = as_list(regions) or available
        unknown = [r for r in chosen if r not in available]
        if unknown:
            raise DataError(
                f"unknown region(s) {', '.join(unknown)} in {self.root}; available: "
                f"{', '.join(available)}"
            )
        self.region_names = chosen
        self.regions: dict[str, University1652] = {}
        for r in chosen:
            if not (self.root / r).is_dir():
                raise DataError(
                    f"region folder {self.root / r} listed in {meta_path} is missing.\n"
                    f"Expected layout:\n{LAYOUT}"
                )
            self.regions[r] = University1652(self.root / r, label_prefix=f"{r}/")

    def train_pairs(self) -> list[Pair]:
        pairs: list[Pair] = []
        for reader in self.regions.values():
            pairs.extend(reader.train_pairs())
        # relabel 0..L-1 over all regions (each region's reader starts at 0)
        label_of = {loc: i for i, loc in enumerate(sorted({p.location for p in pairs}))}
        return [
            Pair(p.drone, p.satellite, p.location, label_of[p.location], p.scene) for p in pairs
        ]

    def eval_sets(self, direction: str = "both") -> list[RetrievalSet]:
        """One set per direction over all chosen regions together (see :meth:`region_eval_sets`)."""
        out = []
        for d in parse_directions(direction):
            parts = [reader.eval_sets(d)[0] for reader in self.regions.values()]
            out.append(_concat(d, parts))
        return out

    def region_eval_sets(self, direction: str = "both") -> list[RetrievalSet]:
        """Per region: sets named ``<direction>@<region>``."""
        out = []
        for r, reader in self.regions.items():
            for rs in reader.eval_sets(direction):
                rs.name = f"{rs.name}@{r}"
                out.append(rs)
        return out

    def scenes(self, split: str = "train") -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = {}
        for reader in self.regions.values():
            out.update(reader.scenes(split))
        return out

    def coordinates(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for reader in self.regions.values():
            out.update(reader.coordinates())
        return out

    def camera_file(self, location: str) -> Path:
        """``<region>/<loc>`` -> path of its ``cameras/<loc>.json``."""
        region, _, loc = location.partition("/")
        return self.root / region / "cameras" / f"{loc}.json"

    def _report(self) -> LayoutReport:
        report = LayoutReport()
        for r, reader in self.regions.items():
            sub = reader._report()
            for split, folders in sub.folders.items():
                report.folders[f"{r}/{split}"] = folders
            report.problems.extend(f"{r}: {p}" for p in sub.problems)
            if not (reader.root / "gps.csv").is_file():
                report.problems.append(f"{r}: missing {reader.root / 'gps.csv'}")
        return report


def _concat(name: str, parts: list[RetrievalSet]) -> RetrievalSet:
    rs = RetrievalSet(name, [], [], [], [], [], [], parts[0].query_view, parts[0].gallery_view)
    for p in parts:
        rs.queries += p.queries
        rs.query_labels += p.query_labels
        rs.gallery += p.gallery
        rs.gallery_labels += p.gallery_labels
        rs.query_coords += p.query_coords or [None] * len(p.queries)
        rs.gallery_coords += p.gallery_coords or [None] * len(p.gallery)
    return rs
