"""Small fixtures for deployment tests and benchmarks: a tiny checkpoint, textured tiles with
coordinates, and "drone views" of a tile (warped, recoloured crops).

Not imported by the deployment path; the checkpoint helper imports the model and config code
lazily.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

ORIGIN = (47.3769, 8.5417)  # tile grid origin (lat, lon)


def make_checkpoint(
    path: str | Path, preset: str = "test", overrides: list[str] | None = None, seed: int = 0
) -> Path:
    """Save a randomly initialised GeoLink checkpoint of ``preset`` (default: the tiny test model)."""
    import torch

    from geolink.checkpoint import save_model
    from geolink.config import load_config, to_yaml
    from geolink.models.geolink import GeoLink

    cfg = load_config(preset, list(overrides or []) + ["model.point.enabled=false"])
    cfg.model.image.pretrained = None
    torch.manual_seed(seed)
    model = GeoLink(cfg.model, cfg.loss).eval()
    return save_model(model, path, to_yaml(cfg))


def textured_tile(seed: int, size: int = 96) -> np.ndarray:
    """A uint8 RGB (size, size, 3) image with blob-and-block structure unique to ``seed``."""
    rng = np.random.default_rng(seed)
    base = rng.random((size // 8, size // 8, 3)).astype(np.float32)
    img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        x0, y0 = rng.integers(0, size - size // 4, 2)
        w, h = rng.integers(size // 10, size // 4, 2)
        img[y0 : y0 + h, x0 : x0 + w] = rng.random(3)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def drone_view(tile: np.ndarray, seed: int, strength: float = 0.06) -> np.ndarray:
    """A perturbed view of ``tile``: small perspective warp, brightness change, blur."""
    rng = np.random.default_rng(seed)
    h, w = tile.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-strength, strength, (4, 2)).astype(np.float32) * np.float32([w, h])
    warped = cv2.warpPerspective(
        tile, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REFLECT
    )
    out = warped.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10)
    out = cv2.GaussianBlur(np.clip(out, 0, 255).astype(np.uint8), (3, 3), 0)
    return out


def tile_latlon(i: int, spacing_deg: float = 0.002) -> tuple[float, float]:
    """Centre of tile ``i`` on a 10-wide grid north-east of :data:`ORIGIN`."""
    return ORIGIN[0] + spacing_deg * (i // 10), ORIGIN[1] + spacing_deg * (i % 10)


def make_tiles(folder: str | Path, n: int, size: int = 96, seed: int = 0) -> tuple[Path, Path]:
    """Write ``n`` tiles ``folder/tiles/t<i>.png`` and ``folder/tiles.csv`` (name,lat,lon).

    Returns (tile folder, CSV path).
    """
    folder = Path(folder)
    tiles = folder / "tiles"
    tiles.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "tiles.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "lat", "lon"])
        for i in range(n):
            img = textured_tile(seed * 1000 + i, size)
            cv2.imwrite(str(tiles / f"t{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            lat, lon = tile_latlon(i)
            writer.writerow([f"t{i:03d}", f"{lat:.6f}", f"{lon:.6f}"])
    return tiles, csv_path


def textured_map(seed: int, size: int = 768) -> np.ndarray:
    """A uint8 RGB aerial-like map rich in corners: smooth multi-scale colour, rotated "roofs"
    and straight "roads". Different seeds share no structure."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float32)
    for cells, weight in (
        (max(2, size // 96), 0.45),
        (max(2, size // 24), 0.3),
        (max(2, size // 6), 0.2),
    ):
        noise = rng.random((cells, cells, 3)).astype(np.float32)
        img += weight * cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(size * size // 1200):  # roofs
        centre = tuple(float(c) for c in rng.uniform(0, size, 2))
        box = ((centre), tuple(float(s) for s in rng.uniform(6, 28, 2)), float(rng.uniform(0, 180)))
        cv2.fillPoly(
            img, [cv2.boxPoints(box).astype(np.int32)], tuple(float(c) for c in rng.random(3))
        )
    for _ in range(size // 64):  # roads
        p, q = (tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2))
        cv2.line(img, p, q, (0.35, 0.35, 0.38), int(rng.integers(3, 7)))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def nadir_camera(east: float, north: float, altitude: float, yaw_deg: float, tilt_deg: float = 0.0):
    """world_from_camera (OpenCV axes, local east/north/up metres) of a drone at (east, north,
    altitude) heading ``yaw_deg`` (clockwise from north), tilted ``tilt_deg`` from nadir towards
    its heading. Returns (4x4 pose, the ground point on the optical axis (east, north))."""
    from geolink.data.synthetic.cameras import drone_pose

    T = drone_pose(east, north, altitude, yaw_deg, tilt_deg)
    ahead = altitude * np.tan(np.deg2rad(tilt_deg))
    yaw = np.deg2rad(yaw_deg)
    return T, (float(east + ahead * np.sin(yaw)), float(north + ahead * np.cos(yaw)))


def render_plane_view(
    ground: np.ndarray, m_per_px: float, K: np.ndarray, world_from_camera: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:  # fmt: skip
    """The pinhole view (``size`` = (W, H)) of a flat north-up map whose centre is the local
    origin, ``m_per_px`` metres per map pixel. Pixel centres at i + 0.5 in both images."""
    h, w = ground.shape[:2]
    px_to_ground = np.array(
        [[m_per_px, 0, -w / 2 * m_per_px], [0, -m_per_px, h / 2 * m_per_px], [0, 0, 1]]
    )
    R = world_from_camera[:3, :3].T  # camera_from_world rotation
    t = -R @ world_from_camera[:3, 3]
    ground_to_image = K @ np.c_[R[:, 0], R[:, 1], t]
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
    M = np.linalg.inv(half) @ ground_to_image @ px_to_ground @ half  # OpenCV pixel centres at i
    return cv2.warpPerspective(
        ground, M, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def make_map_tiles(
    folder: str | Path, ground: np.ndarray, m_per_px: float, tile_px: int, stride_px: int
) -> tuple[Path, Path, list[tuple[str, float, float]]]:
    """Cut the north-up map ``ground`` (its centre at :data:`ORIGIN`) into overlapping square
    tiles ``folder/tiles/m_r<row>_c<col>.png`` every ``stride_px``, with ``folder/tiles.csv``
    (name, lat, lon, footprint_m). Returns (tile folder, CSV, [(name, east_m, north_m)])."""
    from geolink.utils.geodesy import enu_to_latlon

    folder = Path(folder)
    tiles = folder / "tiles"
    tiles.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "tiles.csv"
    h, w = ground.shape[:2]
    centres = []
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "lat", "lon", "footprint_m"])
        for r in range(0, h - tile_px + 1, stride_px):
            for c in range(0, w - tile_px + 1, stride_px):
                name = f"m_r{r}_c{c}"
                crop = ground[r : r + tile_px, c : c + tile_px]
                cv2.imwrite(str(tiles / f"{name}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                east = (c + tile_px / 2 - w / 2) * m_per_px
                north = (h / 2 - r - tile_px / 2) * m_per_px
                lat, lon = enu_to_latlon(east, north, ORIGIN)
                writer.writerow([name, f"{lat:.8f}", f"{lon:.8f}", tile_px * m_per_px])
                centres.append((name, east, north))
    return tiles, csv_path, centres
