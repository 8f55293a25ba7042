"""University-1652 reader (native layout, nothing downloaded).

Also reads every region of the synthetic benchmark, which is written in this layout (plus a
``gps.csv`` that gives each location's lat/lon).
"""

from __future__ import annotations

from pathlib import Path

from geolink.data.base import (
    CrossViewDataset,
    LayoutReport,
    Pair,
    RetrievalSet,
    list_location_folders,
    pairs_from_folders,
    require_dir,
    u1652_eval_sets,
    u1652_scenes,
)
from geolink.errors import DataError

LAYOUT = """\
  ROOT/
    train/drone/<loc>/image-01.jpeg ...        (drone views of each training location)
    train/satellite/<loc>/<loc>.jpg            (one satellite tile per training location)
    test/query_drone/<loc>/...   test/gallery_satellite/<loc>/...
    test/query_satellite/<loc>/... test/gallery_drone/<loc>/...
    gps.csv (optional: name,lat,lon per location)
  <loc> is a location id such as 0839; train and test locations are disjoint."""

TRAIN_FOLDERS = ("drone", "satellite")
TEST_FOLDERS = ("query_drone", "gallery_satellite", "query_satellite", "gallery_drone")


def read_gps_csv(path: Path) -> dict[str, tuple[float, float]]:
    """Read a ``name,lat,lon`` CSV (header required; extra columns ignored) -> {name: (lat, lon)}
    with the project's one coordinates reader (:func:`geolink.deploy.geo.read_coords_csv`)."""
    from geolink.deploy.geo import read_coords_csv

    return {name: (c["lat"], c["lon"]) for name, c in read_coords_csv(path).items()}


class University1652(CrossViewDataset):
    """``university1652``: train/{drone,satellite}, test/{query,gallery}_{drone,satellite}.

    Options: ``label_prefix`` prepends a namespace to every location id (the synthetic dataset
    uses ``"<region>/"``).
    """

    name = "university1652"
    layout = LAYOUT

    def __init__(self, root: str | Path, label_prefix: str = ""):
        super().__init__(root)
        self.prefix = label_prefix
        if not (self.root / "train").is_dir() and not (self.root / "test").is_dir():
            raise DataError(
                f"{self.name} root {self.root} has neither a train/ nor a test/ folder.\n"
                f"Expected layout:\n{LAYOUT}"
            )
        gps = self.root / "gps.csv"
        self._coords = read_gps_csv(gps) if gps.is_file() else {}

    # -- helpers ---------------------------------------------------------------------------
    def _folder(self, split: str, folder: str, required: bool = True) -> dict[str, list[Path]]:
        path = self.root / split / folder
        if required:
            require_dir(path, f"{self.name} {split}/{folder}", LAYOUT)
        locs = list_location_folders(path)
        if self.prefix:
            locs = {self.prefix + k: v for k, v in locs.items()}
        return locs

    # -- public API --------------------------------------------------------------------------
    def train_pairs(self) -> list[Pair]:
        drone = self._folder("train", "drone")
        satellite = self._folder("train", "satellite")
        return pairs_from_folders(drone, satellite)

    def eval_sets(self, direction: str = "both") -> list[RetrievalSet]:
        return u1652_eval_sets(self._folder, direction, self.coordinates())

    def scenes(self, split: str = "train") -> dict[str, list[Path]]:
        return u1652_scenes(self._folder, split)

    def coordinates(self) -> dict[str, tuple[float, float]]:
        return {self.prefix + k: v for k, v in self._coords.items()}

    def _report(self) -> LayoutReport:
        report = LayoutReport()
        for split, folders in (("train", TRAIN_FOLDERS), ("test", TEST_FOLDERS)):
            for folder in folders:
                locs = self._folder(split, folder, required=False)
                report.add(split, folder, locs, self.root / split / folder)
        tr = report.folders["train"]
        if tr["drone"]["locations"] and tr["satellite"]["locations"]:
            d = set(self._folder("train", "drone", False))
            s = set(self._folder("train", "satellite", False))
            if d != s:
                report.problems.append(
                    f"{len(d ^ s)} training location(s) have drone or satellite images only"
                )
        return report
