"""A position inside the retrieved tile: local features, geometric verification, a pose.

Retrieval says which tile; refinement says where in it. For one query image and its top-k tiles:

1. SIFT keypoints and descriptors (OpenCV) on both images, matched with Lowe's ratio test;
2. a RANSAC homography from query pixels to tile pixels. Its inliers verify the tile: the tiles
   are re-ranked by inlier count;
3. the position, in the tile's local east/north frame (metres from its centre, the tile being a
   north-up image of ``footprint_m`` metres):
   - **with intrinsics** ``K`` (of the query as given, principal point at ``(W/2, H/2)``): the
     camera pose from the inlier correspondences, tile pixels taken as ground points at height 0
     (IPPE, OpenCV's planar PnP solver). The position is the drone's nadir point, and the pose
     gives its height above the ground plane. No attitude is needed: the pose recovers it;
   - **without**: the query's image centre mapped through the homography, i.e. the ground point
     the camera looks at. It is the drone's own position only for a nadir camera;
4. an uncertainty: the RMS distance of the position refitted on bootstrap resamples of the
   inliers (a 1-sigma radius in metres; ``benchmarks/bench_refine.py`` measures how often the
   true error stays within it).

A tile fails when it has too few inliers, the homography mirrors or folds the image, or the
position lands implausibly far from the tile. The fix then says why (``ok`` False, ``reason``) and
the caller keeps the tile centre: refinement never returns an unverified position.

Keypoints follow the project's pixel convention (a pixel's centre at ``i + 0.5``); OpenCV puts it
at ``i``, so 0.5 is added to every keypoint.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from geolink.errors import ConfigError, GeoLinkError
from geolink.utils.geodesy import enu_to_latlon


@dataclass(frozen=True)
class RefineConfig:
    """Settings of :class:`Refiner`; invalid values raise :class:`ConfigError` at construction."""

    top_k: int = 5  # tiles to verify (the first top_k retrieved)
    max_features: int = 4000  # SIFT keypoints per image
    ratio: float = 0.8  # Lowe's ratio test
    ransac_px: float = 3.0  # RANSAC threshold, tile pixels (OpenCV measures it in the target)
    min_inliers: int = 12  # fewer inliers: the tile is not verified
    bootstrap: int = 32  # resamples for the uncertainty (0: none)
    max_offset: float = 1.5  # the position must lie within this many footprints of the tile centre

    def __post_init__(self) -> None:
        checks = {
            "top_k": self.top_k >= 1,
            "max_features": self.max_features >= 8,
            "ratio": 0 < self.ratio < 1,
            "ransac_px": self.ransac_px > 0,
            "min_inliers": self.min_inliers >= 6,
            "bootstrap": self.bootstrap >= 0,
            "max_offset": self.max_offset > 0,
        }
        bad = [k for k, good in checks.items() if not good]
        if bad:
            allowed = "top_k >= 1, max_features >= 8, 0 < ratio < 1, ransac_px > 0, "
            allowed += "min_inliers >= 6, bootstrap >= 0, max_offset > 0"
            raise ConfigError(
                f"refine: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} ({allowed})"
            )


@dataclass
class TileFix:
    """The outcome of refining a query against one tile."""

    tile_id: str
    ok: bool
    matches: int  # ratio-test matches
    inliers: int  # RANSAC homography inliers
    method: str | None = None  # "pose" (nadir point) | "homography" (image centre)
    east_m: float | None = None  # position, metres east of the tile centre
    north_m: float | None = None
    lat: float | None = None
    lon: float | None = None
    uncertainty_m: float | None = None  # bootstrap 1-sigma radius
    altitude_m: float | None = None  # camera height above the ground plane (pose only)
    reason: str | None = None  # why not ok

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Features:
    xy: np.ndarray  # (N, 2) float64, project pixel convention
    desc: np.ndarray | None  # (N, 128) float32
    shape: tuple[int, int]  # (H, W)


class Refiner:
    """SIFT + RANSAC + IPPE refinement; keeps the features of recently seen tiles by tile id
    (ids must be unique: one Refiner per index).

    Not thread-safe (OpenCV's detector object): callers serialise (:class:`Localizer` holds a
    lock around it).
    """

    def __init__(self, conf: RefineConfig | None = None, cache_tiles: int = 256):
        self.conf = conf or RefineConfig()
        self._sift = cv2.SIFT_create(nfeatures=self.conf.max_features)
        self._tiles: OrderedDict[str, Features] = OrderedDict()
        self._cache_size = cache_tiles

    def features(self, rgb: np.ndarray) -> Features:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        kps, desc = self._sift.detectAndCompute(gray, None)
        xy = np.array([k.pt for k in kps], np.float64).reshape(-1, 2) + 0.5
        return Features(xy, desc, gray.shape[:2])

    def tile_features(self, tile_id: str, load: Any) -> Features:
        """Features of a tile, computed from ``load()`` (uint8 RGB) on first use."""
        if tile_id in self._tiles:
            self._tiles.move_to_end(tile_id)
            return self._tiles[tile_id]
        feats = self.features(load())
        self._tiles[tile_id] = feats
        if len(self._tiles) > self._cache_size:
            self._tiles.popitem(last=False)
        return feats

    def fix(
        self, query: Features, tile: Features, record: dict[str, Any], K: np.ndarray | None = None
    ) -> TileFix:
        """Refine ``query`` against one tile (``record``: its id, lat, lon, footprint_m)."""
        tid = str(record.get("id"))
        fail = _check_record(record)
        if fail:
            return TileFix(tid, False, 0, 0, reason=fail)
        q, t = self._match(query, tile)
        if len(q) < self.conf.min_inliers:
            return TileFix(tid, False, len(q), 0, reason=_too_few("matches", len(q), self.conf))
        H, mask = cv2.findHomography(q, t, cv2.RANSAC, self.conf.ransac_px, maxIters=2000)
        n_in = int(mask.sum()) if mask is not None else 0
        if H is None or n_in < self.conf.min_inliers:
            return TileFix(tid, False, len(q), n_in, reason=_too_few("inliers", n_in, self.conf))
        inl = mask.ravel().astype(bool)
        ground = _tile_to_ground(t[inl], tile.shape, float(record["footprint_m"]))
        fix = TileFix(tid, False, len(q), n_in)
        if K is None:
            est = _image_centre(H, q[inl], ground, query.shape, self.conf.bootstrap)
            fix.method = "homography"
        else:
            est = _nadir(q[inl], ground, np.asarray(K, np.float64), self.conf)
            fix.method = "pose"
        return _finish(fix, est, record, self.conf)

    def refine(
        self,
        image: np.ndarray,
        tiles: Sequence[tuple[dict[str, Any], Any]],
        K: np.ndarray | None = None,
    ) -> list[TileFix]:
        """Refine one uint8 RGB query against ``tiles``: (record, loader) pairs, loader() giving
        the tile's uint8 RGB pixels. One :class:`TileFix` per tile, in the given order."""
        query = self.features(image)
        if len(query.xy) < self.conf.min_inliers:
            reason = f"the query image has {len(query.xy)} keypoints (blank or featureless?)"
            return [TileFix(str(r.get("id")), False, 0, 0, reason=reason) for r, _ in tiles]
        out = []
        for record, load in tiles:
            try:
                feats = self.tile_features(str(record["id"]), load)
            except GeoLinkError as e:  # one unreadable tile does not sink the others
                out.append(
                    TileFix(str(record.get("id")), False, 0, 0, reason=f"tile unreadable: {e}")
                )
                continue
            out.append(self.fix(query, feats, record, K))
        return out

    def _match(self, query: Features, tile: Features) -> tuple[np.ndarray, np.ndarray]:
        empty = np.zeros((0, 2), np.float64)
        if query.desc is None or tile.desc is None or len(tile.xy) < 2 or len(query.xy) < 2:
            return empty, empty
        pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query.desc, tile.desc, k=2)
        good = [
            p[0] for p in pairs if len(p) == 2 and p[0].distance < self.conf.ratio * p[1].distance
        ]
        if not good:
            return empty, empty
        qi = np.array([m.queryIdx for m in good])
        ti = np.array([m.trainIdx for m in good])
        return query.xy[qi], tile.xy[ti]


def rerank(fixes: Sequence[TileFix]) -> list[int]:
    """Order of the tiles after geometric verification: verified tiles first, most inliers
    first; unverified ones keep their retrieval order behind them (a stable sort)."""
    return sorted(
        range(len(fixes)), key=lambda i: (not fixes[i].ok, -fixes[i].inliers * fixes[i].ok)
    )


# ----------------------------------------------------------------------------- geometry
def _check_record(record: dict[str, Any]) -> str | None:
    if record.get("lat") is None or record.get("lon") is None:
        return "the tile has no position"
    if not record.get("footprint_m"):
        return "the tile has no footprint_m (metres per side), so its pixels have no scale"
    return None


def _too_few(what: str, n: int, conf: RefineConfig) -> str:
    return f"{n} {what} (< {conf.min_inliers}): the tile is not verified"


def _tile_to_ground(px: np.ndarray, shape: tuple[int, int], footprint_m: float) -> np.ndarray:
    """Tile pixels -> (N, 2) east/north metres from the tile centre (north-up tile)."""
    h, w = shape
    east = (px[:, 0] - w / 2) * (footprint_m / w)
    north = (h / 2 - px[:, 1]) * (footprint_m / h)
    return np.stack([east, north], -1)


def _image_centre(
    H: np.ndarray, q: np.ndarray, ground: np.ndarray, shape: tuple[int, int], n_boot: int
) -> tuple[np.ndarray, float | None, float | None] | str:
    """The ground point under the query's image centre, and its bootstrap spread."""
    h, w = shape
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    warped = cv2.perspectiveTransform(corners[None], H)[0]
    if np.linalg.det(H[:2, :2]) <= 0 or not cv2.isContourConvex(warped.astype(np.float32)):
        return "the homography mirrors or folds the image"
    # ground metres from query pixels: fit once more on the inliers, in metres
    G, _ = cv2.findHomography(q, ground, 0)
    if G is None:
        return "the inliers do not determine a homography"
    centre = np.array([[[w / 2, h / 2]]], np.float64)
    est = cv2.perspectiveTransform(centre, G)[0, 0]

    def refit(idx: np.ndarray) -> np.ndarray | None:
        Gb, _ = cv2.findHomography(q[idx], ground[idx], 0)
        return None if Gb is None else cv2.perspectiveTransform(centre, Gb)[0, 0]

    return est, _spread(est, refit, len(q), n_boot), None


def _pose(q: np.ndarray, ground: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Camera centre (east, north, up) above the ground plane and the RMS reprojection error
    (pixels) of the planar PnP solution that puts the camera above the ground."""
    obj = np.c_[ground, np.zeros(len(ground))]
    try:
        n, rvecs, tvecs, errs = cv2.solvePnPGeneric(obj, q, K, None, flags=cv2.SOLVEPNP_IPPE)
    except cv2.error:
        return None
    best = None
    for rv, tv, err in zip(rvecs, tvecs, np.ravel(errs) if errs is not None else [], strict=False):
        R, _ = cv2.Rodrigues(rv)
        centre = -R.T @ tv.ravel()
        if centre[2] > 0 and (best is None or err < best[1]):
            best = (centre, float(err))
    return best


def _nadir(
    q: np.ndarray, ground: np.ndarray, K: np.ndarray, conf: RefineConfig
) -> tuple[np.ndarray, float | None, float | None] | str:
    """The drone's nadir point from the planar pose, its bootstrap spread and the altitude."""
    if K.shape != (3, 3):
        return f"intrinsics must be a 3x3 matrix, got shape {K.shape}"
    solved = _pose(q, ground, K)
    if solved is None:
        return "no camera pose above the ground plane fits the inliers"
    centre, rms = solved
    if rms > 2 * conf.ransac_px:  # OpenCV's RMS per coordinate, query pixels
        return f"the pose reprojects the inliers {rms:.1f} px RMS off (> {2 * conf.ransac_px:g})"

    def refit(idx: np.ndarray) -> np.ndarray | None:
        sol = _pose(q[idx], ground[idx], K)
        return None if sol is None else sol[0][:2]

    return centre[:2], _spread(centre[:2], refit, len(q), conf.bootstrap), float(centre[2])


def _spread(est: np.ndarray, refit: Any, n: int, n_boot: int) -> float | None:
    """RMS distance (metres) of bootstrap refits from ``est``; None without resamples."""
    if n_boot <= 0:
        return None
    rng = np.random.default_rng(0)
    draws = [refit(rng.integers(0, n, n)) for _ in range(n_boot)]
    draws = np.array([d for d in draws if d is not None and np.all(np.isfinite(d))])
    if len(draws) < 2:
        return None
    return float(np.sqrt(np.mean(np.sum((draws - est) ** 2, axis=1))))


def _finish(fix: TileFix, est: Any, record: dict[str, Any], conf: RefineConfig) -> TileFix:
    """Accept a position estimate (or record why not) and convert it to lat/lon."""
    if isinstance(est, str):
        fix.reason = est
        return fix
    (east, north), sigma, altitude = est
    limit = conf.max_offset * float(record["footprint_m"])
    if not (np.isfinite(east) and np.isfinite(north)) or np.hypot(east, north) > limit:
        fix.reason = (
            f"the position lands {np.hypot(east, north):.0f} m from the tile centre "
            f"(> {conf.max_offset:g} footprints = {limit:.0f} m)"
        )
        return fix
    lat, lon = enu_to_latlon(east, north, (float(record["lat"]), float(record["lon"])))
    fix.ok, fix.east_m, fix.north_m = True, float(east), float(north)
    fix.lat, fix.lon, fix.uncertainty_m, fix.altitude_m = float(lat), float(lon), sigma, altitude
    return fix
