"""Dataset views shared by every benchmark reader.

A reader turns a dataset root in its *native* layout into two views:

- the **training view**: a list of :class:`Pair` (one drone image, the satellite image of the same
  location, the location id, an integer label and the *scene key* that names the location's point
  cloud for the 3D branch);
- the **evaluation view**: a list of :class:`RetrievalSet` (queries and gallery with string labels,
  one set per direction, and per height for SUES-200).

Labels in retrieval sets are location ids as strings. ``""`` marks an unlabeled image (the
``folder`` dataset allows unlabeled queries). Gallery classes that never occur among the queries
are kept: whether they are distractors (official protocols) or junk (the paper's protocol) is
decided by the evaluation code, not here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geolink.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
DIRECTIONS = ("drone2satellite", "satellite2drone")


@dataclass(frozen=True)
class Pair:
    """One training sample: a drone image and the satellite image of the same location."""

    drone: Path
    satellite: Path
    location: str
    label: int
    scene: str


@dataclass
class RetrievalSet:
    """One evaluation problem: rank ``gallery`` for every item of ``queries``.

    ``query_view`` / ``gallery_view`` say which side holds drone images ("drone" or "satellite"),
    so that weather is applied to drone images only.
    """

    name: str
    queries: list[Path]
    query_labels: list[str]
    gallery: list[Path]
    gallery_labels: list[str]
    query_coords: list[tuple[float, float] | None] | None = None
    gallery_coords: list[tuple[float, float] | None] | None = None
    query_view: str = ""
    gallery_view: str = ""

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.query_labels):
            raise ValueError(
                f"{self.name}: {len(self.queries)} queries, {len(self.query_labels)} labels"
            )
        if len(self.gallery) != len(self.gallery_labels):
            raise ValueError(
                f"{self.name}: {len(self.gallery)} gallery, {len(self.gallery_labels)} labels"
            )

    @property
    def labeled(self) -> bool:
        """True when every query has a location label (metrics need it)."""
        return all(label != "" for label in self.query_labels)


def is_image(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS
    )


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (no recursion)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_image(p))


def list_location_folders(folder: Path) -> dict[str, list[Path]]:
    """``folder/<loc>/<images>`` -> {loc: sorted image paths}; locations sorted by name."""
    if not folder.is_dir():
        return {}
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out[sub.name] = list_images(sub)
    return out


def require_dir(path: Path, what: str, layout: str) -> Path:
    """Raise a :class:`DataError` naming ``path`` and the expected layout if it is not a folder."""
    if not path.is_dir():
        kind = "is not a folder" if path.exists() else "is missing"
        raise DataError(f"{what}: {path} {kind}.\nExpected layout:\n{layout}")
    return path


def parse_directions(direction: str) -> tuple[str, ...]:
    if direction == "both":
        return DIRECTIONS
    if direction in DIRECTIONS:
        return (direction,)
    raise DataError(
        f"unknown direction '{direction}'; expected one of both, {', '.join(DIRECTIONS)}"
    )


def folder_counts(locations: dict[str, list[Path]]) -> dict[str, int]:
    return {"locations": len(locations), "images": sum(len(v) for v in locations.values())}


def make_retrieval_set(
    name: str,
    queries: dict[str, list[Path]],
    gallery: dict[str, list[Path]],
    query_view: str,
    gallery_view: str,
    coords: dict[str, tuple[float, float]] | None = None,
) -> RetrievalSet:
    """Flatten {location: images} maps into a :class:`RetrievalSet` (labels = location ids)."""
    q_paths, q_labels = _flatten(queries)
    g_paths, g_labels = _flatten(gallery)
    q_coords = g_coords = None
    if coords:
        q_coords = [coords.get(label) for label in q_labels]
        g_coords = [coords.get(label) for label in g_labels]
    return RetrievalSet(
        name, q_paths, q_labels, g_paths, g_labels, q_coords, g_coords, query_view, gallery_view
    )


# The University-1652 test folders (DenseUAV and the synthetic benchmark use the same layout):
# direction -> (query folder, gallery folder, query view, gallery view)
U1652_TEST_SETS = {
    "drone2satellite": ("query_drone", "gallery_satellite", "drone", "satellite"),
    "satellite2drone": ("query_satellite", "gallery_drone", "satellite", "drone"),
}


def u1652_eval_sets(
    folder: Callable[[str, str], dict[str, list[Path]]],
    direction: str,
    coords: dict[str, tuple[float, float]] | None = None,
) -> list[RetrievalSet]:
    """Retrieval sets of a University-1652-layout test split; ``folder(split, name)`` lists the
    ``{location: images}`` of ``split/name``."""
    sets = []
    for d in parse_directions(direction):
        q, g, qv, gv = U1652_TEST_SETS[d]
        sets.append(make_retrieval_set(d, folder("test", q), folder("test", g), qv, gv, coords))
    return sets


def u1652_scenes(
    folder: Callable[[str, str], dict[str, list[Path]]], split: str
) -> dict[str, list[Path]]:
    """Reconstruction scenes of a University-1652-layout split: the drone images per location."""
    names = {"train": "drone", "test": "query_drone"}
    if split not in names:
        raise DataError(f"unknown split '{split}'; expected train or test")
    return folder(split, names[split])


def _flatten(groups: dict[str, list[Path]]) -> tuple[list[Path], list[str]]:
    paths: list[Path] = []
    labels: list[str] = []
    for loc, images in groups.items():
        paths.extend(images)
        labels.extend([loc] * len(images))
    return paths, labels


def pairs_from_folders(
    drone: dict[str, list[Path]],
    satellite: dict[str, list[Path]],
    scene_of: dict[str, str] | None = None,
    label_of: dict[str, int] | None = None,
    satellite_for: Callable[[Path, list[Path]], list[Path]] | None = None,
) -> list[Pair]:
    """Sample4Geo pairing: every drone image with the (first) satellite image of its location.

    ``label_of`` maps location -> integer label (default: index in the sorted shared locations);
    ``satellite_for(drone_path, satellite_paths) -> list[Path]`` may choose several satellite
    images per drone image (DenseUAV). Locations present on one side only are skipped with a
    warning.
    """
    shared = sorted(set(drone) & set(satellite))
    missing = sorted(set(drone) ^ set(satellite))
    if missing:
        log.warning(
            "%d location(s) have drone or satellite images only and are skipped: %s",
            len(missing),
            ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""),
        )
    if label_of is None:
        label_of = {loc: i for i, loc in enumerate(shared)}
    pairs: list[Pair] = []
    for loc in shared:
        sats = satellite[loc]
        if not sats or not drone[loc]:
            continue
        scene = scene_of[loc] if scene_of else loc
        for d in drone[loc]:
            chosen = satellite_for(d, sats) if satellite_for is not None else sats[:1]
            pairs.extend(Pair(d, s, loc, label_of[loc], scene) for s in chosen)
    return pairs


@dataclass
class LayoutReport:
    """Collects per-folder counts and layout problems for :meth:`CrossViewDataset.summary`."""

    folders: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, split: str, folder: str, locations: dict[str, list[Path]], path: Path) -> None:
        if not path.is_dir():
            self.problems.append(f"missing folder {path}")
        empty = [loc for loc, imgs in locations.items() if not imgs]
        if empty:
            self.problems.append(
                f"{len(empty)} empty location folder(s) in {path}: {', '.join(empty[:5])}"
                + (" ..." if len(empty) > 5 else "")
            )
        broken = _broken_links(path)
        if broken:
            self.problems.append(
                f"{len(broken)} broken or looping symlink(s) under {path} (not used): "
                + ", ".join(str(b.relative_to(path)) for b in broken[:5])
                + (" ..." if len(broken) > 5 else "")
            )
        self.folders.setdefault(split, {})[folder] = folder_counts(locations)


def _broken_links(folder: Path) -> list[Path]:
    """Symlinks in ``folder`` and its location folders that resolve to nothing (dangling or
    pointing at themselves): the image listing skips them, so the summary names them."""
    if not folder.is_dir():
        return []
    found = []
    for p in sorted(folder.iterdir()):
        children = sorted(p.iterdir()) if p.is_dir() and not p.is_symlink() else []
        found += [q for q in [p, *children] if q.is_symlink() and not q.exists()]
    return found


class CrossViewDataset(ABC):
    """Base class of every dataset reader. Subclasses implement the four methods below.

    Construction validates the root (it raises :class:`DataError` naming the missing folder and
    the expected layout) but does not read any image.
    """

    name: str = "base"
    layout: str = ""
    # extra training augmentation the dataset's recipe adds (see ``train_transforms``)
    sepia_solarize: bool = False

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            kind = "is not a folder" if self.root.exists() else "does not exist"
            raise DataError(
                f"{self.name} root {self.root} {kind}.\nExpected layout:\n{self.layout}"
            )

    @abstractmethod
    def train_pairs(self) -> list[Pair]:
        """All training pairs (drone image, satellite image, location, label, scene)."""

    @abstractmethod
    def eval_sets(self, direction: str = "both") -> list[RetrievalSet]:
        """Retrieval problems: ``drone2satellite`` and/or ``satellite2drone``."""

    @abstractmethod
    def scenes(self, split: str = "train") -> dict[str, list[Path]]:
        """Scene key -> drone image paths of that scene (input of 3D reconstruction)."""

    def coordinates(self) -> dict[str, tuple[float, float]]:
        """Location id -> (lat, lon) where the dataset has geo-tags; empty otherwise."""
        return {}

    @abstractmethod
    def _report(self) -> LayoutReport:
        """Counts and problems of the on-disk layout."""

    def image_paths(self) -> list[Path]:
        """Every image the dataset references (for integrity checks)."""
        seen: dict[Path, None] = {}
        for p in self.train_pairs_safe():
            seen.setdefault(p.drone)
            seen.setdefault(p.satellite)
        for rs in self.eval_sets_safe():
            for q in rs.queries:
                seen.setdefault(q)
            for g in rs.gallery:
                seen.setdefault(g)
        return list(seen)

    def train_pairs_safe(self) -> list[Pair]:
        try:
            return self.train_pairs()
        except DataError:
            return []

    def eval_sets_safe(self) -> list[RetrievalSet]:
        try:
            return self.eval_sets("both")
        except DataError:
            return []

    def summary(self, check_images: str = "none", skip_corrupt: bool = False) -> dict:
        """Counts per split/folder, ``complete`` and ``problems``.

        ``check_images``: ``"none"``, ``"header"`` (open each file, fast) or ``"decode"`` (decode
        every image). A corrupt image raises :class:`DataError` naming it, unless
        ``skip_corrupt``; then it is listed under ``"corrupt"``.
        """
        from geolink.data.images import check_images as _check

        report = self._report()
        out: dict = {
            "dataset": self.name,
            "root": str(self.root),
            "splits": report.folders,
            "complete": not report.problems,
            "problems": list(report.problems),
        }
        if check_images != "none":
            bad = _check(self.image_paths(), mode=check_images, skip_corrupt=skip_corrupt)
            out["corrupt"] = [{"path": str(p), "error": e} for p, e in bad]
            out["complete"] = out["complete"] and not bad
        return out


def unique(seq: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(seq))


def as_list(value: str | Sequence[str] | None) -> list[str] | None:
    """Accept ``"a,b"``, ``["a", "b"]`` or one scalar (``150``: CLI options are read as YAML)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, Sequence):
        return [str(value)]
    return [str(v) for v in value]
