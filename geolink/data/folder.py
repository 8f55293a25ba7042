"""``folder``: a user's own drone folder + satellite folder + optional ``name,lat,lon`` CSV.

Satellite tiles are the locations: either ``satellite/<loc>.jpg`` (flat, the file stem is the
location id) or ``satellite/<loc>/<images>``. Drone images are labeled when they sit in a
``drone/<loc>/`` folder named like a location, and unlabeled (label ``""``) when they lie
directly in ``drone/``: unlabeled queries are fine for retrieval, and are skipped by training.
"""

from __future__ import annotations

from pathlib import Path

from geolink.data.base import (
    CrossViewDataset,
    LayoutReport,
    Pair,
    RetrievalSet,
    list_images,
    list_location_folders,
    make_retrieval_set,
    pairs_from_folders,
    parse_directions,
    require_dir,
)
from geolink.data.university1652 import read_gps_csv
from geolink.errors import DataError

LAYOUT = """\
  ROOT/
    drone/<loc>/*.jpg  (labeled drone images)  and/or  drone/*.jpg  (unlabeled queries)
    satellite/<loc>.jpg (one tile per location) or satellite/<loc>/*.jpg
    gps.csv            (optional) header name,lat,lon; name = location id (tile stem) or a
                       drone image file name
  (--option drone_dir=... satellite_dir=... gps=... point elsewhere)"""


class FolderDataset(CrossViewDataset):
    """``folder``. Options: ``drone_dir``, ``satellite_dir``, ``gps`` (paths, absolute or relative
    to the root; defaults ``drone``, ``satellite``, ``gps.csv`` if present)."""

    name = "folder"
    layout = LAYOUT

    def __init__(
        self,
        root: str | Path,
        drone_dir: str | Path = "drone",
        satellite_dir: str | Path = "satellite",
        gps: str | Path | None = None,
    ):
        super().__init__(root)
        self.drone_dir = self.root / drone_dir
        self.satellite_dir = require_dir(
            self.root / satellite_dir, "folder dataset satellite folder", LAYOUT
        )
        if gps is not None:
            gps_path = self.root / gps
            if not gps_path.is_file():
                raise DataError(f"GPS file {gps_path} does not exist; expected a name,lat,lon CSV")
        else:
            gps_path = self.root / "gps.csv"
        self._coords = read_gps_csv(gps_path) if gps_path.is_file() else {}
        if not self.satellite_locations():
            raise DataError(
                f"no satellite images in {self.satellite_dir}.\nExpected layout:\n{LAYOUT}"
            )

    def satellite_locations(self) -> dict[str, list[Path]]:
        out = {p.stem: [p] for p in list_images(self.satellite_dir)}
        for loc, imgs in list_location_folders(self.satellite_dir).items():
            out.setdefault(loc, []).extend(imgs)
        return dict(sorted(out.items()))

    def drone_images(self) -> tuple[dict[str, list[Path]], list[Path]]:
        """(labeled {loc: images}, unlabeled images)."""
        if not self.drone_dir.is_dir():
            return {}, []
        return list_location_folders(self.drone_dir), list_images(self.drone_dir)

    def train_pairs(self) -> list[Pair]:
        labeled, _ = self.drone_images()
        if not labeled:
            raise DataError(
                f"no labeled drone images for training: put them in {self.drone_dir}/<loc>/ with "
                f"<loc> a satellite tile name.\nExpected layout:\n{LAYOUT}"
            )
        return pairs_from_folders(labeled, self.satellite_locations())

    def eval_sets(self, direction: str = "both") -> list[RetrievalSet]:
        labeled, unlabeled = self.drone_images()
        satellites = self.satellite_locations()
        sets = []
        for d in parse_directions(direction):
            if d == "drone2satellite":
                queries = dict(labeled)
                if unlabeled:
                    queries[""] = unlabeled
                if not queries:
                    raise DataError(
                        f"no drone images in {self.drone_dir}.\nExpected layout:\n{LAYOUT}"
                    )
                rs = make_retrieval_set(d, queries, satellites, "drone", "satellite", self._coords)
                rs.query_coords = [
                    self._image_coords(p, lab)
                    for p, lab in zip(rs.queries, rs.query_labels, strict=True)
                ]
            else:
                if not labeled:
                    if direction == "both":
                        continue  # unlabeled drone images cannot be a labeled gallery
                    raise DataError(
                        f"satellite2drone needs labeled drone images in {self.drone_dir}/<loc>/"
                    )
                rs = make_retrieval_set(d, satellites, labeled, "satellite", "drone", self._coords)
                rs.gallery_coords = [
                    self._image_coords(p, lab)
                    for p, lab in zip(rs.gallery, rs.gallery_labels, strict=True)
                ]
            sets.append(rs)
        return sets

    def _image_coords(self, path: Path, label: str) -> tuple[float, float] | None:
        for key in (path.name, path.stem):
            if key in self._coords:
                return self._coords[key]
        return self._coords.get(label) if label else None

    def scenes(self, split: str = "train") -> dict[str, list[Path]]:
        return self.drone_images()[0]

    def coordinates(self) -> dict[str, tuple[float, float]]:
        return dict(self._coords)

    def _report(self) -> LayoutReport:
        report = LayoutReport()
        labeled, unlabeled = self.drone_images()
        report.add("all", "satellite", self.satellite_locations(), self.satellite_dir)
        report.add("all", "drone (labeled)", labeled, self.drone_dir)
        report.folders["all"]["drone (unlabeled)"] = {"locations": 0, "images": len(unlabeled)}
        stray = sorted(set(labeled) - set(self.satellite_locations()))
        if stray:
            report.problems.append(
                f"{len(stray)} drone folder(s) match no satellite tile: {', '.join(stray[:5])}"
            )
        return report
