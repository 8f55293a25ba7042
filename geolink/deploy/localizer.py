"""Localize drone images against a tile index: encoder (torch or onnxruntime) + FAISS + metadata.

Used by ``geolink locate`` and ``geolink serve``. The position estimate is the centre of the
best-matching tile; when the query's true position is known (EXIF GPS or a coordinates CSV) the
error in metres is reported. Retrieval alone cannot place the drone inside the tile: the error
floor is about half the tile footprint. With ``refine`` (:mod:`geolink.deploy.refine`) the top-k
tiles are verified with local features and re-ranked, and the estimate becomes a position inside
the best verified tile; when none verifies, the tile centre stays, and the result says so.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geolink.data.images import decode_image, read_image_bytes
from geolink.deploy.encoders import OnnxEncoder, TorchEncoder, load_encoder
from geolink.deploy.geo import exif_gps, haversine_m, lookup_position
from geolink.deploy.refine import RefineConfig, Refiner, TileFix, rerank
from geolink.deploy.store import TileIndex
from geolink.deploy.tiles import read_tile_source
from geolink.errors import DataError, GeoLinkError

log = logging.getLogger(__name__)


@dataclass
class Match:
    rank: int
    tile_id: str
    score: float
    lat: float | None
    lon: float | None
    footprint_m: float | None
    distance_m: float | None = None  # to the query's known position
    inliers: int | None = None  # geometric verification (refine only)
    retrieval_rank: int | None = None  # rank before re-ranking (refine only)


@dataclass
class LocateResult:
    query: str
    matches: list[Match]
    lat: float | None  # estimate: centre of the best tile, or the refined position
    lon: float | None
    position: str = "tile_centre"  # "tile_centre" | "nadir" (pose) | "image_centre" (homography)
    refinement: dict[str, Any] | None = None  # the best tile's fix, or why none verified
    known_lat: float | None = None
    known_lon: float | None = None
    known_source: str | None = None  # "exif" | "csv" | "request"
    error_m: float | None = None  # estimate vs known position
    timing_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Localizer:
    """Index + encoder + metadata; thread-safe ``locate`` for the CLI and the service."""

    def __init__(self, index: TileIndex, encoder: TorchEncoder | OnnxEncoder):
        want, have = index.model.get("checkpoint_sha256"), encoder.info.get("checkpoint_sha256")
        if want != have:
            raise GeoLinkError(
                f"the index was built with checkpoint sha256 {str(want)[:12]}… but the encoder "
                f"comes from {str(have)[:12]}…; use the checkpoint (or its ONNX export) that built "
                "the index"
            )
        self.index = index
        self.encoder = encoder
        self._lock = threading.Lock()
        self._refiner: Refiner | None = None
        self._refine_lock = threading.Lock()
        self._centres: np.ndarray | None = None  # (N, 2) tile lat/lon, for nearest_tiles

    @classmethod
    def from_paths(
        cls,
        index_dir: str | os.PathLike,
        checkpoint: str | os.PathLike | None = None,
        onnx: str | os.PathLike | None = None,
        device: str = "cpu",
        threads: int = 0,
    ) -> Localizer:
        """Load an index and its encoder; without ``checkpoint``/``onnx`` use the checkpoint path
        recorded in the index metadata."""
        index = TileIndex.load(index_dir)
        if not index.meta.get("complete", True):
            log.warning(
                "%s is an unfinished build (%d tiles); re-run `geolink index` to finish it",
                index_dir,
                len(index),
            )
        if checkpoint is None and onnx is None:
            # Prefer what built the index: its ONNX file (torch-free) if any, else the checkpoint.
            recorded = [
                ("onnx", index.model.get("onnx")),
                ("checkpoint", index.model.get("checkpoint")),
            ]
            found = [(kind, p) for kind, p in recorded if p and Path(p).is_file()]
            if not found:
                raise DataError(
                    f"the model recorded in {index_dir} ({index.model.get('checkpoint')}) is not "
                    "on this machine; pass --checkpoint or --onnx"
                )
            kind, path = found[0]
            checkpoint, onnx = (path, None) if kind == "checkpoint" else (None, path)
        return cls(index, load_encoder(checkpoint, onnx, device=device, threads=threads))

    @property
    def backend(self) -> str:
        return self.encoder.backend

    def locate(
        self,
        images: Sequence[np.ndarray],
        top_k: int = 5,
        names: Sequence[str] | None = None,
        known: Sequence[tuple[float, float] | None] | None = None,
        known_source: str = "request",
        refine: RefineConfig | None = None,
        intrinsics: Sequence[np.ndarray | None] | None = None,
    ) -> list[LocateResult]:
        """uint8 RGB images (H, W, 3) -> one :class:`LocateResult` per image (top-k, best first).

        With ``refine``, the first ``refine.top_k`` tiles are verified and re-ranked and the
        position is refined inside the best verified one; ``intrinsics`` (a 3x3 K per image, in
        the image's own pixels, or None) turn the image-centre estimate into the drone's nadir
        point (see :mod:`geolink.deploy.refine`).
        """
        if not images:
            return []
        if top_k < 1:
            raise GeoLinkError(f"top-k must be >= 1, got {top_k}")
        names = list(names) if names is not None else [f"image{i}" for i in range(len(images))]
        known = list(known) if known is not None else [None] * len(images)
        Ks = list(intrinsics) if intrinsics is not None else [None] * len(images)
        with self._lock:
            t0 = time.perf_counter()
            emb = self.encoder.embed(images)
            t1 = time.perf_counter()
            scores, rows = self.index.search(emb, top_k)
            t2 = time.perf_counter()
        per = {"embed": 1e3 * (t1 - t0) / len(images), "search": 1e3 * (t2 - t1) / len(images)}
        results = [
            self._result(n, s, r, None, known_source, per)
            for n, s, r in zip(names, scores, rows, strict=True)
        ]
        if refine is not None:
            for res, image, K in zip(results, images, Ks, strict=True):
                self._refine(res, image, K, refine)
        for res, kn in zip(results, known, strict=True):
            if kn is not None:
                _set_known(res, kn, known_source)
        return results

    def _refine(
        self, res: LocateResult, image: np.ndarray, K: np.ndarray | None, conf: RefineConfig
    ) -> None:
        """Verify the top tiles of ``res``, re-rank them and refine its position in place."""
        t0 = time.perf_counter()
        head, tail = res.matches[: conf.top_k], res.matches[conf.top_k :]
        fixes = self.verify(image, [m.tile_id for m in head], K, conf)
        order = rerank(fixes)
        for m, f in zip(head, fixes, strict=True):
            m.inliers, m.retrieval_rank = f.inliers, m.rank
        res.matches = [head[i] for i in order] + tail
        for rank, m in enumerate(res.matches, start=1):
            m.rank = rank
        best = fixes[order[0]] if fixes else None
        if best is not None and best.ok:
            res.lat, res.lon = best.lat, best.lon
            res.position = "nadir" if best.method == "pose" else "image_centre"
            res.refinement = best.to_dict()
        elif best is not None:
            reasons = sorted({f.reason for f in fixes if f.reason})
            res.refinement = {"ok": False, "reason": "; ".join(reasons), "tiles": len(fixes)}
            log.info("%s: no tile verified (%s); keeping the tile centre", res.query, reasons[0])
        res.timing_ms["refine"] = 1e3 * (time.perf_counter() - t0)

    def verify(
        self,
        image: np.ndarray,
        tile_ids: Sequence[str],
        K: np.ndarray | None,
        conf: RefineConfig,
    ) -> list[TileFix]:
        """Refine ``image`` against the given tiles of the index (see :mod:`.refine`)."""
        records = [self.index.tile(t) for t in tile_ids]
        # its own lock: refinement does not hold up the encoder; the tile-feature cache is kept
        # across settings that do not change the features
        with self._refine_lock:
            if self._refiner is None or self._refiner.conf.max_features != conf.max_features:
                self._refiner = Refiner(conf)
            self._refiner.conf = conf
            return self._refiner.refine(
                image, [(r, lambda r=r: read_tile_source(r["source"])) for r in records], K
            )

    def nearest_tiles(self, lat: float, lon: float, n: int) -> list[str]:
        """Ids of the ``n`` tiles whose centres are nearest to (lat, lon)."""
        if self._centres is None:
            pos = [(t.get("lat"), t.get("lon")) for t in self.index.tiles]
            self._centres = np.array(
                [(np.nan, np.nan) if a is None or b is None else (a, b) for a, b in pos], np.float64
            )
        d = haversine_m(lat, lon, self._centres[:, 0], self._centres[:, 1])
        d = np.where(np.isfinite(d), d, np.inf)
        order = np.argsort(d)[:n]
        return [self.index.tiles[int(i)]["id"] for i in order if np.isfinite(d[i])]

    def locate_paths(
        self,
        paths: Sequence[str | os.PathLike],
        top_k: int = 5,
        coords: dict[str, dict[str, float]] | None = None,
        batch_size: int = 16,
        skipped: list[tuple[Path, str]] | None = None,
        refine: RefineConfig | None = None,
        camera: Callable[[np.ndarray], np.ndarray | None] | None = None,
    ) -> list[LocateResult]:
        """Localize image files. Known positions come from ``coords`` (by file name, stem or
        parent folder) or else from the file's EXIF GPS. An unreadable image raises
        :class:`DataError`, unless a ``skipped`` list is given: then it is appended there as
        (path, reason) and the others are still localized. ``refine`` and ``camera`` (image ->
        its 3x3 K, or None) are passed on to :meth:`locate`."""
        out: list[LocateResult] = []
        for s in range(0, len(paths), batch_size):
            chunk, images, raw = [], [], []
            for p in map(Path, paths[s : s + batch_size]):
                try:
                    data = read_image_bytes(p)  # read once: decoded here, EXIF below
                    images.append(decode_image(data, p))
                except DataError as e:
                    if skipped is None:
                        raise
                    skipped.append((p, str(e)))
                    continue
                chunk.append(p)
                raw.append(data)
            Ks = [camera(im) for im in images] if camera is not None else None
            results = self.locate(
                images, top_k, names=[str(p) for p in chunk], refine=refine, intrinsics=Ks
            )
            for p, data, res in zip(chunk, raw, results, strict=True):
                pos, src = (lookup_position(p, coords), "csv") if coords else (None, None)
                if pos is None:
                    pos, src = exif_gps(data), "exif"
                if pos is not None:
                    _set_known(res, pos, src)
            out += results
        return out

    def _result(
        self,
        name: str,
        scores: np.ndarray,
        rows: np.ndarray,
        known: tuple[float, float] | None,
        known_source: str,
        timing: dict[str, float],
    ) -> LocateResult:
        matches = []
        for rank, (score, row) in enumerate(zip(scores, rows, strict=True), start=1):
            if row < 0:  # approximate indexes can return fewer hits
                continue
            t = self.index.tiles[int(row)]
            matches.append(
                Match(rank, t["id"], float(score), t.get("lat"), t.get("lon"), t.get("footprint_m"))
            )
        best = matches[0] if matches else None
        res = LocateResult(
            query=name,
            matches=matches,
            lat=best.lat if best else None,
            lon=best.lon if best else None,
            timing_ms=dict(timing),
        )
        if known is not None:
            _set_known(res, known, known_source)
        return res


def _set_known(res: LocateResult, pos: tuple[float, float], source: str) -> None:
    res.known_lat, res.known_lon, res.known_source = float(pos[0]), float(pos[1]), source
    for m in res.matches:
        if m.lat is not None and m.lon is not None:
            m.distance_m = float(haversine_m(pos[0], pos[1], m.lat, m.lon))
    if res.lat is not None and res.lon is not None:
        res.error_m = float(haversine_m(pos[0], pos[1], res.lat, res.lon))
