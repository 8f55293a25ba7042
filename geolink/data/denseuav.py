"""DenseUAV reader (native layout + GPS files).

GPS lines are parsed as the official ``evaluateDistance.py`` does: split on spaces, token 1 with a
leading ``E`` stripped is the **longitude**, token 2 with a leading ``N`` stripped is the
**latitude**, keyed by the image's parent folder (the location id); a later line for the same
location overwrites an earlier one. We return (lat, lon) like every other reader.
"""

from __future__ import annotations

import re
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
    Dense_GPS_ALL.txt  (optional: Dense_GPS_train.txt, Dense_GPS_test.txt)
                       lines "<path>/<loc>/<file> E<lon> N<lat> <height>"
    train/drone/<6-digit id>/{H100,H90,H80}.JPG
    train/satellite/<id>/{H100,H90,H80}{,_old}.tif
    test/query_drone/<id>/...  test/gallery_satellite/<id>/...
    test/query_satellite/<id>/... test/gallery_drone/<id>/..."""

GPS_FILES = ("Dense_GPS_ALL.txt", "Dense_GPS_train.txt", "Dense_GPS_test.txt")
_HEIGHT = re.compile(r"^(H\d+)", re.IGNORECASE)


def read_gps_file(path: Path) -> dict[str, tuple[float, float]]:
    """Parse a DenseUAV GPS file -> {location id: (lat, lon)} (official parser's token order)."""
    out: dict[str, tuple[float, float]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read DenseUAV GPS file {path}: {e}") from None
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        tokens = line.split(" ")
        parts = tokens[0].replace("\\", "/").split("/")
        try:
            if len(parts) < 2 or len(tokens) < 3:
                raise ValueError
            lon = float(tokens[1].split("E")[-1])
            lat = float(tokens[2].split("N")[-1])
        except ValueError:
            raise DataError(
                f"{path}:{no}: malformed line {line[:80]!r}; expected "
                "'<folder>/<loc>/<image> E<lon> N<lat> <height>'"
            ) from None
        out[parts[-2]] = (lat, lon)
    return out


def match_satellite_by_height(drone: Path, satellites: list[Path]) -> list[Path]:
    """H100.JPG -> [H100.tif, H100_old.tif]; all satellite images if no name matches."""
    m = _HEIGHT.match(drone.stem)
    if m:
        tag = m.group(1).upper()
        chosen = [s for s in satellites if s.stem.upper().split("_")[0] == tag]
        if chosen:
            return chosen
    return list(satellites)


class DenseUAV(CrossViewDataset):
    """``denseuav``. Option ``pairs``: ``height`` (default: each drone image with the satellite
    images of its height, current and old epoch), ``first`` (Sample4Geo: the first satellite
    image only) or ``all`` (every satellite image). Option ``sepia_solarize``: the authors' extra
    OneOf[ToSepia, Solarize] p .1 training augmentation."""

    name = "denseuav"
    layout = LAYOUT

    def __init__(self, root: str | Path, pairs: str = "height", sepia_solarize: bool = False):
        super().__init__(root)
        self.sepia_solarize = bool(sepia_solarize)
        if pairs not in ("height", "first", "all"):
            raise DataError(f"unknown DenseUAV pairs mode '{pairs}'; expected height, first or all")
        self.pairs_mode = pairs
        if not (self.root / "train").is_dir() and not (self.root / "test").is_dir():
            raise DataError(
                f"denseuav root {self.root} has neither a train/ nor a test/ folder.\n"
                f"Expected layout:\n{LAYOUT}"
            )
        self._coords: dict[str, tuple[float, float]] = {}
        # train/test files first so that ALL (if present) wins, as the official script reads ALL
        for name in reversed(GPS_FILES):
            if (self.root / name).is_file():
                self._coords.update(read_gps_file(self.root / name))

    def _folder(self, split: str, folder: str, required: bool = True) -> dict[str, list[Path]]:
        path = self.root / split / folder
        if required:
            require_dir(path, f"denseuav {split}/{folder}", LAYOUT)
        return list_location_folders(path)

    def train_pairs(self) -> list[Pair]:
        chooser = {"height": match_satellite_by_height, "first": None, "all": lambda d, s: s}
        return pairs_from_folders(
            self._folder("train", "drone"),
            self._folder("train", "satellite"),
            satellite_for=chooser[self.pairs_mode],
        )

    def eval_sets(self, direction: str = "both") -> list[RetrievalSet]:
        return u1652_eval_sets(self._folder, direction, self._coords or None)

    def scenes(self, split: str = "train") -> dict[str, list[Path]]:
        return u1652_scenes(self._folder, split)

    def coordinates(self) -> dict[str, tuple[float, float]]:
        return dict(self._coords)

    def _report(self) -> LayoutReport:
        report = LayoutReport()
        for split, folders in (
            ("train", ("drone", "satellite")),
            ("test", ("query_drone", "gallery_satellite", "query_satellite", "gallery_drone")),
        ):
            for folder in folders:
                report.add(
                    split, folder, self._folder(split, folder, False), self.root / split / folder
                )
        if not any((self.root / n).is_file() for n in GPS_FILES):
            report.problems.append(
                f"no GPS file ({GPS_FILES[0]}) in {self.root}: SDM@K unavailable"
            )
        else:
            locs = set(self._folder("test", "query_drone", False))
            missing = sorted(locs - set(self._coords))
            if missing:
                report.problems.append(
                    f"{len(missing)} test location(s) have no GPS entry: {', '.join(missing[:5])}"
                )
        return report


__all__ = ["DenseUAV", "match_satellite_by_height", "read_gps_file"]
