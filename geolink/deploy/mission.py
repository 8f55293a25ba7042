"""``geolink track``: localize the frames of a flight one by one and track them (#12.3).

Per frame, in file-name order: retrieval (top-k tiles), optionally refinement inside the tiles,
then one :class:`~geolink.deploy.track.ParticleTracker` update. The poses CSV (as ``geolink synth
--map`` writes it: ``name, t_s, lat, lon, ..., fx, fy, cx, cy``) is optional; from it the run
takes time stamps (the filter's time step), intrinsics (refinement's nadir point), and the true
positions, which serve only to report errors.

Outputs in ``OUT``: ``trajectory.csv`` (one row per frame: the three estimates, the truth, the
errors, the milliseconds), ``trajectory.geojson`` (the track and the truth as lines, the frames
as points), ``track.png`` (both over a mosaic of the index's tiles) and ``summary.json``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from geolink.data.images import load_image
from geolink.deploy.geo import haversine_m
from geolink.deploy.localizer import Localizer
from geolink.deploy.mapview import tile_mosaic, tiles_origin
from geolink.deploy.refine import RefineConfig
from geolink.deploy.track import ParticleTracker, TrackConfig
from geolink.errors import DataError, GeoLinkError
from geolink.utils.camera import intrinsics
from geolink.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

ESTIMATES = ("tile", "refined", "track")  # top-1 tile centre, refined (else tile), tracked
ROW_FIELDS = [
    "name", "t_s", "tile_lat", "tile_lon", "refined", "guided", "refined_lat", "refined_lon",
    "track_lat", "track_lon", "track_spread_m", "true_lat", "true_lon",
    "tile_error_m", "refined_error_m", "track_error_m", "ms",
]  # fmt: skip


def read_poses(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """``name`` -> its numeric columns (t_s, lat, lon, fx, fy, cx, cy, ... whichever exist)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"poses file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "name" not in reader.fieldnames:
            raise DataError(
                f"{path}: needs a header with a 'name' column (got {reader.fieldnames})"
            )
        out: dict[str, dict[str, float]] = {}
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise DataError(f"{path}:{line}: more fields than the header has columns")
            vals = {}
            for k, v in row.items():
                if k == "name" or v in (None, ""):
                    continue
                try:
                    vals[k] = float(v)
                except ValueError:
                    raise DataError(f"{path}:{line}: column '{k}' is not a number: {v!r}") from None
                if not math.isfinite(vals[k]):
                    raise DataError(f"{path}:{line}: column '{k}' is not finite: {v!r}")
            out[str(row["name"])] = vals
    if not out:
        raise DataError(f"{path}: no poses")
    return out


def _camera(pose: dict[str, float] | None, image: np.ndarray, hfov: float | None):
    if pose is not None and all(k in pose for k in ("fx", "fy", "cx", "cy")):
        return np.array([[pose["fx"], 0, pose["cx"]], [0, pose["fy"], pose["cy"]], [0, 0, 1.0]])
    if hfov is not None:
        return intrinsics(image.shape[1], image.shape[0], hfov)
    return None


def index_origin(loc: Localizer) -> tuple[float, float]:
    """The tracker's local frame: the mean position of the index's tiles."""
    return tiles_origin(loc.index.tiles)


class FlightTracker:
    """The streaming API: one frame in, one estimate out (what runs on board).

    ``step(image, dt, K)`` localizes the frame (retrieval, refinement when ``refine`` is given,
    and, with ``guide``, track-guided refinement against the tiles nearest the predicted
    position), updates the particle filter and returns ``(result, single_fix, estimate)``:
    the frame's :class:`LocateResult`, its own refinement before guidance (a dict, empty without
    refinement) and the :class:`TrackEstimate` (None until a frame had a tile with a position).
    """

    def __init__(
        self,
        loc: Localizer,
        conf: TrackConfig | None = None,
        refine: RefineConfig | None = None,
        guide: bool = True,
    ):
        self.loc, self.conf, self.refine, self.guide = loc, conf or TrackConfig(), refine, guide
        self.filter = ParticleTracker(index_origin(loc), self.conf)
        self.top_k = max(self.conf.top_k, refine.top_k if refine else 1)

    def step(self, image: np.ndarray, dt: float, K: np.ndarray | None = None, name: str = "frame"):
        predicted = self.filter.predict(dt)
        (res,) = self.loc.locate(
            [image], self.top_k, names=[name], refine=self.refine, intrinsics=[K]
        )
        single = dict(res.refinement or {})  # the frame on its own, before any guidance
        if self.refine is not None and predicted is not None and self.guide:
            _guide(self.loc, res, image, K, self.refine, predicted)
        return res, single, self.filter.correct(res)


def track_frames(
    loc: Localizer,
    frames: Sequence[Path],
    poses: dict[str, dict[str, float]] | None = None,
    conf: TrackConfig | None = None,
    refine: RefineConfig | None = None,
    interval_s: float = 2.0,
    hfov: float | None = None,
    progress: Any = None,
    guide: bool = True,
) -> list[dict[str, Any]]:
    """Track image files in order with a :class:`FlightTracker`; one row per frame (see
    :data:`ROW_FIELDS`). Time steps come from the poses' ``t_s`` (else ``interval_s``), the
    intrinsics from their ``fx, fy, cx, cy`` (else ``hfov``), true positions from ``lat, lon``."""
    if poses is not None:
        missing = [p.name for p in frames if p.stem not in poses]
        if missing:
            raise DataError(
                f"the poses have no row for {len(missing)} frame(s), e.g. {missing[:3]}; the "
                "'name' column holds frame file stems"
            )
    tracker = FlightTracker(loc, conf, refine, guide)
    rows, last_t = [], None
    for i, path in enumerate(frames):
        pose = poses.get(path.stem) if poses else None
        t = pose.get("t_s", i * interval_s) if pose else i * interval_s
        dt = interval_s if last_t is None else max(t - last_t, 1e-3)
        last_t = t
        t0 = time.perf_counter()
        image = load_image(path)
        truth = (pose["lat"], pose["lon"]) if pose and "lat" in pose and "lon" in pose else None
        res, single, est = tracker.step(image, dt, _camera(pose, image, hfov), path.name)
        ms = 1e3 * (time.perf_counter() - t0)
        rows.append(_row(path.stem, t, res, single, est, truth, ms))
        if progress is not None:
            progress.update(1)
    return rows


def _guide(loc, res, image, K, refine: RefineConfig, predicted) -> None:
    """Track-guided refinement: verify the ``refine.top_k`` tiles nearest the predicted position
    that retrieval's top tiles did not already cover (0 to top_k more), and keep the fix with
    the most inliers for the filter; ``res`` takes its position."""
    tried = {m.tile_id for m in res.matches[: refine.top_k]}
    near = [
        t for t in loc.nearest_tiles(predicted.lat, predicted.lon, refine.top_k) if t not in tried
    ]
    fixes = [f for f in loc.verify(image, near, K, refine) if f.ok] if near else []
    if not fixes:
        return
    best = max(fixes, key=lambda f: f.inliers)
    current = res.refinement or {}
    if not current.get("ok") or best.inliers > current.get("inliers", 0):
        res.refinement = {**best.to_dict(), "guided": True}
        res.lat, res.lon = best.lat, best.lon
        res.position = "nadir" if best.method == "pose" else "image_centre"


def _row(name, t, res, single, est, truth, ms) -> dict[str, Any]:
    """One trajectory row. ``single``: the frame's own refinement (top-k retrieved tiles only);
    the tracker may have used a track-guided one (``guided``)."""
    top = res.matches[0] if res.matches else None
    guided = bool((res.refinement or {}).get("guided"))
    row = {
        "name": name, "t_s": round(float(t), 3),
        "tile_lat": top.lat if top else None, "tile_lon": top.lon if top else None,
        "refined": bool(single.get("ok")), "guided": guided,
        "refined_lat": single.get("lat") if single.get("ok") else None,
        "refined_lon": single.get("lon") if single.get("ok") else None,
        "track_lat": est.lat if est else None, "track_lon": est.lon if est else None,
        "track_spread_m": round(est.spread_m, 2) if est else None,
        "true_lat": truth[0] if truth else None, "true_lon": truth[1] if truth else None,
        "ms": round(ms, 2),
    }  # fmt: skip
    best = {
        "tile": (row["tile_lat"], row["tile_lon"]),
        "refined": (row["refined_lat"] or row["tile_lat"], row["refined_lon"] or row["tile_lon"]),
        "track": (row["track_lat"], row["track_lon"]),
    }
    for k, (lat, lon) in best.items():
        ok = truth is not None and lat is not None
        row[f"{k}_error_m"] = round(float(haversine_m(*truth, lat, lon)), 2) if ok else None
    return row


def error_stats(errors: Sequence[float]) -> dict[str, float]:
    """Median and 90th percentile of position errors (metres), and the share (%) within 25 m
    and within 50 m; ``{"n": 0}`` when there are none."""
    e = np.asarray([x for x in errors if x is not None], np.float64)
    if not len(e):
        return {"n": 0}
    return {
        "n": len(e),
        "median_m": float(np.median(e)),
        "p90_m": float(np.percentile(e, 90)),
        "within25": float(np.mean(e <= 25) * 100),
        "within50": float(np.mean(e <= 50) * 100),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per estimate (:data:`ESTIMATES`): :func:`error_stats`; and ms per frame."""
    out: dict[str, Any] = {"frames": len(rows), "refined_share": 0.0, "guided_share": 0.0}
    if rows:
        out["refined_share"] = 100 * float(np.mean([r["refined"] for r in rows]))
        out["guided_share"] = 100 * float(np.mean([r["guided"] for r in rows]))
        out["ms_per_frame"] = float(np.median([r["ms"] for r in rows]))
    for k in ESTIMATES:
        stats = error_stats([r[f"{k}_error_m"] for r in rows])
        if stats["n"]:
            out[k] = stats
    return out


# ----------------------------------------------------------------------------- outputs
def write_outputs(rows: list[dict[str, Any]], loc: Localizer, out: Path, meta: dict) -> dict:
    """trajectory.csv, trajectory.geojson, track.png and summary.json in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "trajectory.csv", buf.getvalue())
    atomic_write_json(out / "trajectory.geojson", _geojson(rows))
    draw_track(rows, loc, out / "track.png")
    summary = {**meta, **summarize(rows)}
    atomic_write_json(out / "summary.json", summary)
    return summary


def _geojson(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def line(prefix: str, name: str) -> dict | None:
        pts = [
            [r[f"{prefix}_lon"], r[f"{prefix}_lat"]] for r in rows if r[f"{prefix}_lat"] is not None
        ]
        geom = {"type": "LineString", "coordinates": pts}
        return {"type": "Feature", "geometry": geom, "properties": {"name": name}} if pts else None

    feats = [f for f in (line("track", "track"), line("true", "truth")) if f]
    for r in rows:
        if r["track_lat"] is None:
            continue
        props = {k: r[k] for k in ROW_FIELDS if k not in ("track_lat", "track_lon")}
        geom = {"type": "Point", "coordinates": [r["track_lon"], r["track_lat"]]}
        feats.append({"type": "Feature", "geometry": geom, "properties": props})
    return {"type": "FeatureCollection", "features": feats}


def draw_track(rows: list[dict[str, Any]], loc: Localizer, path: Path) -> None:
    """The track (blue), the truth (green), top-1 tile centres (red) and refined fixes (orange)
    over the tile mosaic, as a PNG."""
    canvas, frame = tile_mosaic(loc.index.tiles, index_origin(loc))
    to_px = frame.to_px
    canvas = (canvas * 0.75).astype(np.uint8)  # dim the map so the lines read
    for r in rows:
        if r["tile_lat"] is not None:
            cv2.circle(canvas, to_px(r["tile_lat"], r["tile_lon"]), 3, (230, 40, 40), -1)
        if r["refined_lat"] is not None:
            cv2.circle(canvas, to_px(r["refined_lat"], r["refined_lon"]), 3, (255, 160, 0), -1)
    for prefix, colour in (("true", (40, 220, 40)), ("track", (40, 120, 255))):
        pts = [
            to_px(r[f"{prefix}_lat"], r[f"{prefix}_lon"])
            for r in rows
            if r[f"{prefix}_lat"] is not None
        ]
        if len(pts) > 1:
            cv2.polylines(canvas, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
    legend = [("truth", (40, 220, 40)), ("track", (40, 120, 255)), ("top-1 tile", (230, 40, 40)),
              ("refined", (255, 160, 0))]  # fmt: skip
    for i, (text, colour) in enumerate(legend):
        y = 22 + 22 * i
        cv2.rectangle(canvas, (8, y - 12), (150, y + 6), (0, 0, 0), -1)
        cv2.putText(
            canvas, text, (14, y + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA
        )
    ok, buf = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise GeoLinkError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())
