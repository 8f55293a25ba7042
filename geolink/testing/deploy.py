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
