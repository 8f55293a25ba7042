"""A contiguous synthetic map (a geo-referenced orthophoto) and drone flights over it (#12.1).

One procedural scene of the chosen style covers the whole map (``2 * half_m`` metres a side). The
orthophoto is rendered as the satellite side is in the benchmark (nadir orthographic camera, the
style's satellite sun, grading and blur) in chunks, mosaicked and written as an RGB GeoTIFF in
WGS84 (EPSG:4326, equirectangular about the style's origin: the project's one geodesy). Flights
are drone paths of straight legs and turns, with altitude, camera tilt (nadir to oblique), yaw
offset and roll varying per leg within the preset's ranges; a frame every ``spacing_m`` metres,
rendered with the drone's sun and grading, and its true pose in ``poses.csv`` and
``flight.json``.

Layout of ``OUT``::

    map.json                       generator version, seed, style, params, geo-reference
    map.tif                        the orthophoto (RGB uint8, EPSG:4326, north-up)
    map_preview.jpg                the orthophoto at most 1024 px a side
    flights/<fid>/frames/<n>.jpg   drone frames, in flight order
    flights/<fid>/poses.csv        name, t_s, lat, lon, altitude_m, yaw/pitch/roll_deg, fx, fy,
                                   cx, cy, east_m, north_m (metres from the map centre)
    flights/<fid>/flight.json      the same plus world_from_camera (OpenCV axes, ENU metres)

Pose conventions are :func:`geolink.data.synthetic.cameras.drone_pose`'s. Random streams derive
from ``(seed, map, flight)``, so output is deterministic per seed. A finished flight (its
``flight.json`` exists) is skipped on a re-run; the map's parameters must match (or
``overwrite``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from geolink.data.synthetic import cameras as C
from geolink.data.synthetic import world
from geolink.data.synthetic.flightpath import flight_path
from geolink.data.synthetic.presets import GENERATOR_VERSION, SynthParams
from geolink.data.synthetic.render import Light, Renderer
from geolink.data.synthetic.styles import RegionStyle, get_style
from geolink.errors import ConfigError, DataError, MissingDependencyError
from geolink.utils import conf
from geolink.utils.geodesy import EARTH_RADIUS_M
from geolink.utils.io import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

MAP_REGION = 1000  # random-stream namespace of maps (benchmark regions are 0, 1, ...)
POSE_FIELDS = [
    "name", "t_s", "lat", "lon", "altitude_m", "yaw_deg", "pitch_deg", "roll_deg",
    "fx", "fy", "cx", "cy", "east_m", "north_m",
]  # fmt: skip


@dataclass(frozen=True)
class MapParams:
    style: str = "campus"
    half_m: float = 200.0  # the map covers [-half, half]^2 metres about the style's origin
    ground_px: int = 1024  # ground texture resolution over the map
    m_per_px: float = 1.0  # orthophoto resolution
    chunk_px: int = 512  # orthophoto render chunk
    shadow_size: int = 2048
    flights: int = 1
    length_m: float = 400.0  # path length per flight
    spacing_m: float = 20.0  # distance between frames
    speed_mps: float = 12.0  # for the frames' time stamps
    frame_size: tuple[int, int] = (
        160,
        160,
    )  # width, height (square, as the benchmarks' drone images)
    hfov_deg: float = 70.0
    altitude_m: tuple[float, float] = (120.0, 160.0)  # per-leg range
    pitch_deg: tuple[float, float] = (0.0, 30.0)  # camera tilt from nadir, per leg
    yaw_offset_deg: float = 15.0  # camera yaw off the direction of travel, per leg, +-
    roll_deg: float = 2.0  # per-frame roll, +-
    leg_m: tuple[float, float] = (120.0, 300.0)  # straight-leg lengths
    turn_deg: tuple[float, float] = (45.0, 135.0)  # turn angles
    turn_radius_m: float = 40.0
    margin_m: float = 100.0  # the path stays this far inside the map edge
    jpeg_quality: int = 92

    def to_dict(self) -> dict[str, Any]:
        return json_ready(dataclasses.asdict(self))


MAP_STEP = "map"  # presets in geolink/configs/map/: tiny, default


def json_ready(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: json_ready(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [json_ready(x) for x in v]
    return v


def resolve_map_params(preset: str = "tiny", **overrides: Any) -> MapParams:
    """The map preset with ``overrides`` applied; unknown names and bad values: ConfigError."""
    p = conf.load(MapParams, MAP_STEP, preset, overrides=overrides)
    get_style(p.style)  # unknown style: ConfigError listing the styles
    _check(p)
    return p


def _check(p: MapParams) -> None:
    problems = []
    if p.margin_m * 2 >= p.half_m * 2 - 2 * p.turn_radius_m:
        problems.append(f"margin_m {p.margin_m} leaves no room to fly in a {2 * p.half_m} m map")
    if p.chunk_px < 16 or p.ground_px < 16 or p.shadow_size < 16:
        problems.append("chunk_px, ground_px and shadow_size must be at least 16")
    if min(p.frame_size) < 16:
        problems.append(f"frame_size must be at least 16 x 16 pixels, got {list(p.frame_size)}")
    for name in ("altitude_m", "pitch_deg", "leg_m", "turn_deg"):
        lo, hi = getattr(p, name)
        if not 0 <= lo <= hi:
            problems.append(f"{name} must be a range 0 <= low <= high, got {[lo, hi]}")
    if not 0 <= p.pitch_deg[1] < 60:
        problems.append(f"pitch_deg must stay below 60 degrees (the horizon), got {p.pitch_deg}")
    if min(p.spacing_m, p.speed_mps, p.m_per_px, p.length_m, p.hfov_deg) <= 0 or p.flights < 1:
        problems.append("spacing_m, speed_mps, m_per_px, length_m, hfov_deg > 0 and flights >= 1")
    if problems:
        raise ConfigError("map parameters: " + "; ".join(problems))


# ----------------------------------------------------------------------------- rendering
class MapWorld:
    """The map's scene loaded into a renderer, with the style's two lights."""

    def __init__(self, p: MapParams, seed: int):
        self.p, self.style = p, get_style(p.style)
        scene_params = dataclasses.replace(
            SynthParams(), scene_half_m=p.half_m, ground_px=p.ground_px
        )
        self.scene = world.build_scene(self.style, scene_params, seed, MAP_REGION, 0)
        self.renderer = Renderer(shadow_size=p.shadow_size)
        self.renderer.set_atlas(0, world.region_atlas(self.style, seed, MAP_REGION))
        self.renderer.set_scene(self.scene.vertices, self.scene.ground, self.scene.half)

    def light(self, which: str) -> Light:
        from geolink.data.synthetic.write import _linear

        s = self.style
        sun = C.sun_direction(*(s.satellite_sun if which == "satellite" else s.drone_sun))
        self.renderer.set_sun(sun)
        return Light(sun, _linear(s.sun_color) * SUN_POWER, _linear(s.sky_color))

    def orthophoto(self) -> np.ndarray:
        """The whole map, north-up, (N, N, 3) uint8 at ``m_per_px``."""
        p, g = self.p, self.style.satellite_grading
        n = int(round(2 * p.half_m / p.m_per_px))
        out = np.zeros((n, n, 3), np.uint8)
        light = self.light("satellite")
        for r0 in range(0, n, p.chunk_px):
            for c0 in range(0, n, p.chunk_px):
                h, w = min(p.chunk_px, n - r0), min(p.chunk_px, n - c0)
                cx = -p.half_m + (c0 + w / 2) * p.m_per_px
                cy = p.half_m - (r0 + h / 2) * p.m_per_px
                T = C.satellite_pose(np.array([cx, cy, 0.0]), SATELLITE_HEIGHT)
                proj = C.gl_ortho(w * p.m_per_px / 2, h * p.m_per_px / 2, 1.0, C_FAR)
                rgb, _, _ = self.renderer.render(
                    C.gl_view(T), proj, T[:3, 3], (w, h), light, g, g.vegetation_shift,
                    SATELLITE_HEIGHT - 60.0,
                )  # fmt: skip
                out[r0 : r0 + h, c0 : c0 + w] = rgb
        return cv2.GaussianBlur(out, (0, 0), g.blur_px) if g.blur_px > 0 else out

    def frame(self, pose: np.ndarray, K: np.ndarray, light: Light) -> np.ndarray:
        from geolink.data.synthetic.write import _sky

        w, h = self.p.frame_size
        proj = C.gl_perspective(K, w, h, 1.0, C_FAR)
        rgb, _, hit = self.renderer.render(
            C.gl_view(pose), proj, pose[:3, 3], (w, h), light, self.style.drone_grading
        )
        return _sky(rgb, hit, self.style.sky_color)

    def release(self) -> None:
        self.renderer.release()


SUN_POWER = 1.25
SATELLITE_HEIGHT = 1000.0
C_FAR = 6000.0


# ----------------------------------------------------------------------------- writing
def geo_transform(style: RegionStyle, p: MapParams) -> dict[str, float]:
    """North-west corner and pixel size in degrees of the orthophoto (equirectangular)."""
    lat0, lon0 = style.origin_latlon
    dlat = math.degrees(p.m_per_px / EARTH_RADIUS_M)
    dlon = math.degrees(p.m_per_px / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    n = int(round(2 * p.half_m / p.m_per_px))
    return {
        "west": lon0 - dlon * n / 2,
        "north": lat0 + dlat * n / 2,
        "dlon": dlon,
        "dlat": dlat,
        "size_px": n,
    }


def write_geotiff(path: Path, rgb: np.ndarray, gt: dict[str, float]) -> None:
    """An RGB uint8 GeoTIFF in EPSG:4326, written atomically."""
    try:
        import rasterio
        from rasterio.transform import from_origin
    except ImportError:
        raise MissingDependencyError(
            "writing the map's GeoTIFF needs rasterio: pip install 'geolink[synth]'"
        ) from None

    transform = from_origin(gt["west"], gt["north"], gt["dlon"], gt["dlat"])
    with atomic_path(path) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=3,
        dtype="uint8", crs="EPSG:4326", transform=transform, compress="deflate",
    ) as ds:  # fmt: skip
        ds.write(np.moveaxis(rgb, -1, 0))


def _pose_rows(frames: list[dict], K: np.ndarray, origin: tuple[float, float]) -> list[dict]:
    lat, lon = C.enu_to_latlon(
        np.array([f["east"] for f in frames]), np.array([f["north"] for f in frames]), origin
    )
    rows = []
    for i, f in enumerate(frames):
        rows.append({
            "name": f"{i:04d}", "t_s": round(f["t_s"], 3), "lat": float(lat[i]),
            "lon": float(lon[i]), "altitude_m": f["altitude_m"], "yaw_deg": f["yaw_deg"],
            "pitch_deg": f["pitch_deg"], "roll_deg": f["roll_deg"], "fx": K[0, 0],
            "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "east_m": f["east"],
            "north_m": f["north"],
        })  # fmt: skip
    return rows


def render_flight(mw: MapWorld, seed: int, index: int, out: Path) -> Path:
    """Render flight ``index`` into ``out/flights/f<index>``; skipped when already finished."""
    from geolink.data.synthetic.write import _jpeg

    fdir = out / "flights" / f"f{index:02d}"
    if (fdir / "flight.json").exists():
        return fdir
    p = mw.p
    frames = flight_path(p, world.stream(seed, MAP_REGION, index, 7))
    K = C.intrinsics(*p.frame_size, p.hfov_deg)
    rows = _pose_rows(frames, K, mw.style.origin_latlon)
    light = mw.light("drone")
    poses = []
    for f, row in zip(tqdm(frames, desc=f"flight f{index:02d}", unit="frame"), rows, strict=True):
        T = C.drone_pose(
            f["east"], f["north"], f["altitude_m"], f["yaw_deg"], f["pitch_deg"], f["roll_deg"]
        )
        _jpeg(fdir / "frames" / f"{row['name']}.jpg", mw.frame(T, K, light), p.jpeg_quality)
        poses.append({**row, "world_from_camera": T.tolist()})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=POSE_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(fdir / "poses.csv", buf.getvalue())
    atomic_write_json(fdir / "flight.json", {
        "flight": f"f{index:02d}", "K": K.tolist(), "width": p.frame_size[0],
        "height": p.frame_size[1], "frames": poses,
        "conventions": "world_from_camera: OpenCV camera axes, ENU metres from the map centre; "
        "yaw clockwise from north of the image top, pitch = tilt from nadir, roll about the axis",
    })  # fmt: skip
    return fdir


def _map_meta(p: MapParams, seed: int) -> dict[str, Any]:
    style = get_style(p.style)
    return {
        "generator_version": GENERATOR_VERSION,
        "kind": "map",
        "seed": seed,
        "params": p.to_dict(),
        "origin_latlon": list(style.origin_latlon),
        "crs": "EPSG:4326",
        "geotransform": geo_transform(style, p),
        "geodetic": "equirectangular about origin_latlon, earth radius 6378137 m",
    }


def _prepare(out: Path, meta: dict, overwrite: bool) -> None:
    path = out / "map.json"
    if path.exists() and not overwrite:
        import json

        old = json.loads(path.read_text())
        if old != meta:
            diff = sorted(
                k for k in set(old.get("params", {})) | set(meta["params"])
                if old.get("params", {}).get(k) != meta["params"].get(k)
            )  # fmt: skip
            raise DataError(
                f"{out} holds a map made with other settings (differs in: "
                f"{', '.join(diff) or 'seed / version'}); pass --overwrite or another --out"
            )
    elif path.exists() and overwrite:
        import shutil

        for name in ("flights", "map.tif", "map_preview.jpg", "map.json"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, meta)


def generate_map(
    out: str | Path, preset: str = "tiny", seed: int = 0, overwrite: bool = False, **overrides
) -> Path:
    """Render the map and its flights into ``out`` (resumable); returns ``out``.

    Rendering runs in a spawned child process, as the benchmark's does: a process that has held
    an EGL (Mesa llvmpipe) context crashes when it imports torch afterwards.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    p = resolve_map_params(preset, **overrides)
    out = Path(out)
    _prepare(out, _map_meta(p, seed), overwrite)  # refuses a folder made with other settings
    conf.record(out, p, MAP_STEP, overwrite=True)  # config.yaml, as every step writes
    try:
        with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            pool.submit(_render_map, p, seed, out).result()
    except cf.process.BrokenProcessPool as e:
        # e.g. a script without `if __name__ == "__main__":`; as generate() does
        log.warning(
            "the render process failed (%s); rendering in this process (import torch before "
            "calling generate_map() in such scripts)",
            e,
        )
        _render_map(p, seed, out)
    return out


def _render_map(p: MapParams, seed: int, out: Path) -> None:
    from geolink.data.synthetic.write import _jpeg

    mw = MapWorld(p, seed)
    try:
        if not (out / "map.tif").exists():
            ortho = mw.orthophoto()
            scale = min(1.0, 1024 / ortho.shape[0])
            preview = cv2.resize(ortho, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            _jpeg(out / "map_preview.jpg", preview, 88)
            write_geotiff(out / "map.tif", ortho, geo_transform(mw.style, p))
        for i in range(p.flights):
            render_flight(mw, seed, i, out)
    finally:
        mw.release()
