"""SUES-200 reader: the raw layout and the split Training/Testing layout.

Heights 150/200/250/300 m are evaluated separately (sets named ``drone2satellite@150`` ...).
The 120 fixed training ids ship with the package (``sues200_train_ids.txt``); in the raw layout
the other ids are the test locations. As in the benchmark's own split, the test gallery holds
all 200 locations (training ones are distractors in the official protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from geolink.data.base import (
    CrossViewDataset,
    LayoutReport,
    Pair,
    RetrievalSet,
    as_list,
    list_images,
    list_location_folders,
    make_retrieval_set,
    pairs_from_folders,
    parse_directions,
    require_dir,
)
from geolink.errors import DataError

HEIGHTS = ("150", "200", "250", "300")

LAYOUT = """\
  either the raw layout (SUES-200-512x512/):
    ROOT/drone-view/<0001..0200>/<150|200|250|300>/*.jpg
    ROOT/satellite-view/<0001..0200>/0.png
  or the split layout (after the benchmark's split script):
    ROOT/Training/<h>/drone/<id>/*.jpg       ROOT/Training/<h>/satellite/<id>/0.png
    ROOT/Testing/<h>/query_drone/<id>/...    ROOT/Testing/<h>/gallery_satellite/<id>/...
    ROOT/Testing/<h>/query_satellite/<id>/... ROOT/Testing/<h>/gallery_drone/<id>/...
  with <h> in 150, 200, 250, 300."""


def default_train_ids() -> list[str]:
    """The 120 fixed SUES-200 training location ids shipped with the package."""
    text = resources.files("geolink.data").joinpath("sues200_train_ids.txt").read_text("utf-8")
    return _parse_ids(text)


def _parse_ids(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


class SUES200(CrossViewDataset):
    """``sues200``. Options: ``heights`` (subset of 150,200,250,300), ``layout`` (auto/raw/split),
    ``train_ids`` (a file with one id per line, replacing the shipped list; raw layout only),
    ``sepia_solarize`` (the authors' extra OneOf[ToSepia, Solarize] p .1 training augmentation)."""

    name = "sues200"
    layout = LAYOUT

    def __init__(
        self,
        root: str | Path,
        heights: str | Sequence[str] | None = None,
        layout: str = "auto",
        train_ids: str | Path | None = None,
        sepia_solarize: bool = False,
    ):
        super().__init__(root)
        self.sepia_solarize = bool(sepia_solarize)
        hs = [str(h) for h in (as_list(heights) or HEIGHTS)]
        bad = [h for h in hs if h not in HEIGHTS]
        if bad:
            raise DataError(
                f"unknown SUES-200 height(s) {', '.join(bad)}; expected {', '.join(HEIGHTS)}"
            )
        self.heights = hs
        self.mode = self._detect(layout)
        if train_ids is not None:
            path = Path(train_ids)
            if not path.is_file():
                raise DataError(f"SUES-200 train id file {path} does not exist")
            self.train_ids = _parse_ids(path.read_text("utf-8"))
        else:
            self.train_ids = default_train_ids()

    def _detect(self, layout: str) -> str:
        raw = (self.root / "drone-view").is_dir() or (self.root / "satellite-view").is_dir()
        split = (self.root / "Training").is_dir() or (self.root / "Testing").is_dir()
        if layout == "auto":
            if split:
                return "split"
            if raw:
                return "raw"
            raise DataError(
                f"sues200 root {self.root} has neither drone-view/ + satellite-view/ (raw layout) "
                f"nor Training/ + Testing/ (split layout).\nExpected layout:\n{LAYOUT}"
            )
        if layout not in ("raw", "split"):
            raise DataError(f"unknown SUES-200 layout '{layout}'; expected auto, raw or split")
        return layout

    # -- folder access -------------------------------------------------------------------------
    def _raw_drone(self, h: str, ids: set[str] | None) -> dict[str, list[Path]]:
        base = require_dir(self.root / "drone-view", "sues200 drone-view", LAYOUT)
        out = {}
        for loc in sorted(p.name for p in base.iterdir() if p.is_dir()):
            if ids is None or loc in ids:
                out[loc] = list_images(base / loc / h)
        return out

    def _raw_satellite(self, ids: set[str] | None) -> dict[str, list[Path]]:
        base = require_dir(self.root / "satellite-view", "sues200 satellite-view", LAYOUT)
        locs = list_location_folders(base)
        return {k: v for k, v in locs.items() if ids is None or k in ids}

    def _split(
        self, part: str, h: str, folder: str, required: bool = True
    ) -> dict[str, list[Path]]:
        path = self.root / part / h / folder
        if required:
            require_dir(path, f"sues200 {part}/{h}/{folder}", LAYOUT)
        return list_location_folders(path)

    def _test_ids(self) -> set[str]:
        all_ids = set(self._raw_satellite(None)) | set(self._raw_drone(self.heights[0], None))
        return all_ids - set(self.train_ids)

    # -- public API ----------------------------------------------------------------------------
    def train_pairs(self) -> list[Pair]:
        pairs: list[Pair] = []
        for h in self.heights:
            if self.mode == "raw":
                ids = set(self.train_ids)
                drone, sat = self._raw_drone(h, ids), self._raw_satellite(ids)
            else:
                drone, sat = (
                    self._split("Training", h, "drone"),
                    self._split("Training", h, "satellite"),
                )
            scene_of = {loc: f"{h}/{loc}" for loc in drone}
            pairs.extend(pairs_from_folders(drone, sat, scene_of=scene_of, label_of=_AnyLabel()))
        label_of = {loc: i for i, loc in enumerate(sorted({p.location for p in pairs}))}
        return [
            Pair(p.drone, p.satellite, p.location, label_of[p.location], p.scene) for p in pairs
        ]

    def eval_sets(self, direction: str = "both") -> list[RetrievalSet]:
        sets = []
        for h in self.heights:
            for d in parse_directions(direction):
                if self.mode == "raw":
                    test = self._test_ids()
                    if d == "drone2satellite":
                        q, g = self._raw_drone(h, test), self._raw_satellite(None)
                    else:
                        q, g = self._raw_satellite(test), self._raw_drone(h, None)
                else:
                    names = ("query_drone", "gallery_satellite")
                    if d == "satellite2drone":
                        names = ("query_satellite", "gallery_drone")
                    q, g = self._split("Testing", h, names[0]), self._split("Testing", h, names[1])
                views = ("drone", "satellite") if d == "drone2satellite" else ("satellite", "drone")
                sets.append(make_retrieval_set(f"{d}@{h}", q, g, *views))
        return sets

    def scenes(self, split: str = "train") -> dict[str, list[Path]]:
        if split not in ("train", "test"):
            raise DataError(f"unknown split '{split}'; expected train or test")
        out: dict[str, list[Path]] = {}
        for h in self.heights:
            if self.mode == "raw":
                ids = set(self.train_ids) if split == "train" else self._test_ids()
                drone = self._raw_drone(h, ids)
            elif split == "train":
                drone = self._split("Training", h, "drone")
            else:
                drone = self._split("Testing", h, "query_drone")
            out.update({f"{h}/{loc}": imgs for loc, imgs in drone.items()})
        return out

    def _report(self) -> LayoutReport:
        report = LayoutReport()
        if self.mode == "raw":
            return self._report_raw(report)
        for h in self.heights:
            for part, folders in (
                ("Training", ("drone", "satellite")),
                (
                    "Testing",
                    ("query_drone", "gallery_satellite", "query_satellite", "gallery_drone"),
                ),
            ):
                for folder in folders:
                    path = self.root / part / h / folder
                    report.add(f"{part}/{h}", folder, list_location_folders(path), path)
        return report

    def _report_raw(self, report: LayoutReport) -> LayoutReport:
        sat_path = self.root / "satellite-view"
        sat = list_location_folders(sat_path)
        report.add("all", "satellite-view", sat, sat_path)
        missing_train = sorted(set(self.train_ids) - set(sat))
        if sat and missing_train:
            report.problems.append(
                f"{len(missing_train)} of the 120 training ids have no satellite-view folder: "
                + ", ".join(missing_train[:5])
            )
        for h in self.heights:
            path = self.root / "drone-view"
            drone = self._raw_drone(h, None) if path.is_dir() else {}
            report.add("all", f"drone-view/*/{h}", drone, path)
        return report


class _AnyLabel(dict):
    """Placeholder labels; :meth:`SUES200.train_pairs` relabels over all heights."""

    def __missing__(self, key: str) -> int:
        return -1
