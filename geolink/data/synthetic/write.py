"""Render every location of every region and write the University-1652 layout (+ cameras, depth).

Layout of ``OUT`` (see ``docs/synthetic.md``)::

    synth.json                                    generator version, seed, preset, params, regions
    <region>/synth.json, gps.csv                  style, geodetic origin, locations
    <region>/train/drone/<loc>/image-01.jpg ...   train/satellite/<loc>/<loc>.jpg
    <region>/test/{query,gallery}_drone/<loc>/..  test/{query,gallery}_satellite/<loc>/<loc>.jpg
    <region>/cameras/<loc>.json                   intrinsics, extrinsics, lat/lon (written last)
    <region>/depth/<loc>/<image stem>.npy         float32 z-depth, metres, 0 = no geometry

A location is finished when its ``cameras/<loc>.json`` exists; re-running skips finished
locations, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import logging
import multiprocessing as mp
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from geolink.data.synthetic import cameras as C
from geolink.data.synthetic import world
from geolink.data.synthetic.presets import GENERATOR_VERSION, STEP, SynthParams, resolve_params
from geolink.data.synthetic.render import Light, Renderer
from geolink.data.synthetic.styles import RegionStyle, get_style
from geolink.errors import DataError
from geolink.utils import conf
from geolink.utils.io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)
PENDING = ".synth_pending.json"
_RENDERER: Renderer | None = None
_ATLASES: dict[tuple[int, int], np.ndarray] = {}


def _renderer(params: SynthParams) -> Renderer:
    global _RENDERER
    if _RENDERER is not None and _RENDERER.shadow_size != params.shadow_size:
        _RENDERER.release()
        _RENDERER = None
    if _RENDERER is None:
        _RENDERER = Renderer(shadow_size=params.shadow_size)
    return _RENDERER


def _linear(c) -> np.ndarray:
    return (np.asarray(c, np.float64) / 255.0) ** 2.2


def _jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise RuntimeError(f"JPEG encoding failed for {path}")
    atomic_write_bytes(path, buf.tobytes())


def _npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, arr.astype(np.float32))


def _sky(rgb: np.ndarray, hit: np.ndarray, color) -> np.ndarray:
    """Fill pixels without geometry with a vertical sky gradient."""
    if hit.all():
        return rgb
    h = rgb.shape[0]
    ramp = np.linspace(0.85, 1.05, h)[:, None, None] * np.asarray(color, np.float64)[None, None]
    sky = np.broadcast_to(ramp, rgb.shape).clip(0, 255).astype(np.uint8)
    return np.where(hit[..., None], rgb, sky)


def region_meta(params: SynthParams, seed: int, r: int) -> dict[str, Any]:
    """Contents of ``<region>/synth.json`` and the location table (no rendering needed)."""
    name = params.regions[r]
    style = get_style(name)
    centers, is_train = world.location_centers(params, seed, r)
    lat, lon = C.enu_to_latlon(centers[:, 0], centers[:, 1], style.origin_latlon)
    locs = [
        {"id": f"{i:04d}", "split": "train" if is_train[i] else "test", "xy": centers[i].tolist(),
         "lat": float(lat[i]), "lon": float(lon[i])}
        for i in range(len(centers))
    ]  # fmt: skip
    return {
        "region": name,
        "style": style.name,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "origin_latlon": list(style.origin_latlon),
        "geodetic": "equirectangular about origin_latlon, earth radius 6378137 m: "
        "lat = lat0 + deg(y / R), lon = lon0 + deg(x / (R cos(lat0)))",
        "world_frame": "metres, east-north-up, origin at origin_latlon",
        "style_params": dataclasses.asdict(style),
        "locations": locs,
    }


def _paths(split: str, loc: str) -> dict[str, list[str]]:
    if split == "train":
        return {"drone": [f"train/drone/{loc}"], "satellite": [f"train/satellite/{loc}"]}
    return {
        "drone": [f"test/query_drone/{loc}", f"test/gallery_drone/{loc}"],
        "satellite": [f"test/gallery_satellite/{loc}", f"test/query_satellite/{loc}"],
    }


@dataclasses.dataclass
class _Loc:
    """What the per-location writers share."""

    params: SynthParams
    style: RegionStyle
    root: Path
    loc: str
    paths: dict[str, list[str]]
    offset: np.ndarray  # the location's position in the region frame (x, y, 0)

    def world_pose(self, T: np.ndarray) -> list:
        Tw = T.copy()
        Tw[:3, 3] += self.offset
        return Tw.tolist()

    def save(self, kind: str, name: str, rgb: np.ndarray, depth: np.ndarray) -> dict[str, str]:
        """Write the image to every folder of ``kind`` and the depth map; return their paths."""
        for folder in self.paths[kind]:
            _jpeg(self.root / folder / f"{name}.jpg", rgb, self.params.jpeg_quality)
        out = {"image": f"{self.paths[kind][0]}/{name}.jpg"}
        if self.params.write_depth:
            out["depth"] = f"depth/{self.loc}/{name}.npy"
            _npy(self.root / out["depth"], depth)
        return out


def _drone_views(L: _Loc, rend: Renderer, scene: world.Scene, rng: np.random.Generator) -> list:
    p, style = L.params, L.style
    sun = C.sun_direction(*style.drone_sun)
    rend.set_sun(sun)
    light = Light(sun, _linear(style.sun_color) * SUN_POWER, _linear(style.sky_color))
    target = np.array([0.0, 0.0, scene.target_height() * p.look_at_height_ratio])
    poses = C.orbit_poses(p.drone_rings(), target, float(rng.uniform(0, 360)))
    size = p.drone_size
    K = C.intrinsics(size, size, p.hfov_deg)
    views = []
    for k, (T, alt, radius) in enumerate(poses):
        near = max(1.0, 0.05 * float(np.linalg.norm(T[:3, 3] - target)))
        proj = C.gl_perspective(K, size, size, near, C_FAR)
        exposure = style.drone_grading.exposure * rng.uniform(0.93, 1.07)
        grading = dataclasses.replace(style.drone_grading, exposure=exposure)
        rgb, depth, hit = rend.render(C.gl_view(T), proj, T[:3, 3], (size, size), light, grading)
        files = L.save("drone", f"image-{k + 1:02d}", _sky(rgb, hit, style.sky_color), depth)
        views.append({
            **files, "K": K.tolist(), "world_from_camera": L.world_pose(T), "altitude": alt,
            "radius": radius, "width": size, "height": size,
        })  # fmt: skip
    return views


def _satellite_view(L: _Loc, rend: Renderer) -> dict:
    """Nadir orthographic tile with its own sun, season tint, grade and optical blur."""
    p, style, g = L.params, L.style, L.style.satellite_grading
    size, mpp = p.satellite_size, p.footprint_m / p.satellite_size
    T = C.satellite_pose(np.zeros(3), p.satellite_height_m)
    sun = C.sun_direction(*style.satellite_sun)
    rend.set_sun(sun)
    light = Light(sun, _linear(style.sun_color) * SUN_POWER, _linear(style.sky_color))
    proj = C.gl_ortho(p.footprint_m / 2, p.footprint_m / 2, 1.0, C_FAR)
    haze_offset = p.satellite_height_m - 60.0  # only the last tens of metres of air matter
    rgb, depth, _ = rend.render(
        C.gl_view(T), proj, T[:3, 3], (size, size), light, g, g.vegetation_shift, haze_offset
    )
    if g.blur_px > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), g.blur_px)
    return {
        **L.save("satellite", L.loc, rgb, depth),
        "projection": "orthographic", "footprint_m": p.footprint_m, "m_per_px": mpp,
        "center_xyz": L.offset.tolist(), "width": size, "height": size,
        "K": [[1 / mpp, 0, size / 2], [0, 1 / mpp, size / 2], [0, 0, 1]],
        "world_from_camera": L.world_pose(T),
        "sun_azimuth_elevation_deg": list(style.satellite_sun),
    }  # fmt: skip


def render_location(params: SynthParams, seed: int, r: int, info: dict, root: Path) -> None:
    """Render and write one location of region ``r`` (skipped when already on disk)."""
    loc, split = info["id"], info["split"]
    cam_path = root / "cameras" / f"{loc}.json"
    if cam_path.exists():
        return
    style = get_style(params.regions[r])
    scene = world.build_scene(style, params, seed, r, int(loc))
    rend = _renderer(params)
    if (seed, r) not in _ATLASES:
        _ATLASES.clear()
        _ATLASES[(seed, r)] = world.region_atlas(style, seed, r)
    rend.set_atlas((seed, r), _ATLASES[(seed, r)])
    rend.set_scene(scene.vertices, scene.ground, scene.half)
    L = _Loc(params, style, root, loc, _paths(split, loc), np.array([*info["xy"], 0.0]))
    drones = _drone_views(L, rend, scene, world.camera_rng(seed, r, int(loc)))
    satellite = _satellite_view(L, rend)
    atomic_write_json(cam_path, {
        "location": loc, "split": split, "lat": info["lat"], "lon": info["lon"],
        "satellite": satellite, "drone": drones,
        "target_height_m": scene.target_height(),
        "drone_sun_azimuth_elevation_deg": list(style.drone_sun),
    })  # fmt: skip


SUN_POWER = 1.25  # sun irradiance relative to the sky colour
C_FAR = 6000.0


def _work(args: tuple) -> tuple[str, str]:
    params, seed, r, info, root = args
    render_location(params, seed, r, info, Path(root))
    return params.regions[r], info["id"]


def _init_worker(n_workers: int) -> None:
    from geolink.utils.process import die_with_parent

    die_with_parent()
    if n_workers > 1:  # one thread per worker for llvmpipe and OpenCV: workers fill the cores
        os.environ.setdefault("LP_NUM_THREADS", "1")
        cv2.setNumThreads(1)


def _render_all(todo: list[tuple], workers: int, bar: tqdm) -> None:
    """Render ``todo`` in spawned worker processes.

    Even with one worker, rendering runs in a child process: Mesa's llvmpipe loads its own LLVM,
    and importing torch/triton later in a process that holds an EGL context crashes the
    interpreter. The caller (e.g. ``geolink demo``, which trains next) stays GL-free.
    """
    n = max(1, min(workers, len(todo)))
    ctx = mp.get_context("spawn")  # not fork: a child must not inherit GL/EGL state
    try:
        with cf.ProcessPoolExecutor(n, ctx, initializer=_init_worker, initargs=(n,)) as ex:
            for _ in ex.map(_work, todo, chunksize=max(1, len(todo) // (n * 8))):
                bar.update()
        return
    except cf.process.BrokenProcessPool as e:
        # e.g. a script without `if __name__ == "__main__":`; finish in this process
        log.warning(
            "worker processes failed (%s); rendering in this process (import torch before "
            "calling generate() in such scripts)",
            e,
        )
    for j in todo:
        if not (Path(j[4]) / "cameras" / f"{j[3]['id']}.json").exists():
            _work(j)
            bar.update()


def _meta(params: SynthParams, preset: str, seed: int) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "preset": preset,
        "params": params.to_dict(),
        "regions": list(params.regions),
    }


def _prepare(out: Path, meta: dict, overwrite: bool) -> bool:
    """Check ``out`` against ``meta``. Returns True if it is already complete."""
    done, pending = out / "synth.json", out / PENDING
    for f in (done, pending):
        if f.exists():
            old = json.loads(f.read_text())
            if overwrite:
                for region in old.get("regions", []):
                    shutil.rmtree(out / region, ignore_errors=True)
                f.unlink()
                (out / conf.CONFIG_FILE).unlink(missing_ok=True)
            elif old != meta:
                diff = conf.differences(old, meta) or ["generator version"]
                raise DataError(
                    f"{f} was written with other parameters ({'; '.join(diff[:6])}); "
                    "pass overwrite=True (--overwrite) or choose another output folder"
                )
            elif f == done:
                return True
    if out.exists() and not (out / PENDING).exists() and any(out.iterdir()):
        raise DataError(
            f"{out} exists and is not a synthetic benchmark folder; choose an empty one"
        )
    atomic_write_json(out / PENDING, meta)
    return False


def generate(
    out_dir: str | os.PathLike,
    preset: str = "tiny",
    seed: int = 0,
    overwrite: bool = False,
    **overrides: Any,
) -> Path:
    """Generate the synthetic benchmark into ``out_dir`` and return its root.

    ``overrides`` replace preset parameters (see :class:`SynthParams`). Finished locations are
    kept and skipped, so an interrupted run resumes; ``overwrite`` regenerates everything.
    Raises :class:`GLUnavailableError` when no headless OpenGL context can be created.
    """
    params = resolve_params(preset, **overrides)
    out = Path(out_dir)
    meta = _meta(params, preset, seed)
    done = _prepare(out, meta, overwrite)  # refuses a folder made with other parameters
    conf.record(out, params, STEP, overwrite=True)  # config.yaml, as every step writes
    if done:
        log.info("synthetic benchmark already complete in %s", out)
        return out
    jobs = []
    for r, name in enumerate(params.regions):
        rm = region_meta(params, seed, r)
        root = out / name
        atomic_write_json(root / "synth.json", rm)
        rows = ["name,lat,lon"] + [
            f"{x['id']},{x['lat']:.8f},{x['lon']:.8f}" for x in rm["locations"]
        ]
        atomic_write_text(root / "gps.csv", "\n".join(rows) + "\n")
        jobs += [(params, seed, r, info, str(root)) for info in rm["locations"]]
    todo = [j for j in jobs if not (Path(j[4]) / "cameras" / f"{j[3]['id']}.json").exists()]
    log.info(
        "synthetic benchmark: %d locations to render (%d done)", len(todo), len(jobs) - len(todo)
    )
    bar = tqdm(total=len(todo), desc="synth", unit="loc")
    if todo:
        _render_all(todo, params.workers, bar)
    bar.close()
    atomic_write_json(out / "synth.json", meta)
    (out / PENDING).unlink(missing_ok=True)
    return out
