"""``depth`` backend: fuse known depth maps and cameras into one point cloud.

The synthetic benchmark ships, per location, ``cameras/<loc>.json`` (intrinsics ``K`` and
``world_from_camera`` in the OpenCV convention: x right, y down, z forward) and
``depth/<loc>/<stem>.npy`` (float32 z-depth in metres, 0 where invalid). Any RGB-D source written
in that layout works too. Pixel (u, v) of a depth map is taken to be centred at
``(u + pixel_center, v + pixel_center)`` in the coordinates of ``K`` (0.5: COLMAP / OpenGL
rasterisation convention).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from geolink.errors import DataError
from geolink.recon.base import ReconBackend, SceneFailed
from geolink.recon.pointcloud import PointCloud

logger = logging.getLogger(__name__)


def unproject_depth(
    depth: np.ndarray,
    K: np.ndarray,
    world_from_camera: np.ndarray,
    stride: int = 1,
    pixel_center: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a z-depth map to world points.

    Args:
        depth: (H, W) z-depth along the camera z axis; <= 0 or non-finite = invalid.
        K: (3, 3) pinhole intrinsics.
        world_from_camera: (4, 4) OpenCV camera-to-world transform.
        stride: keep every ``stride``-th pixel in both directions.
        pixel_center: offset of a pixel centre in the coordinates of K.
    Returns:
        (points (M, 3) float64 world coordinates, pixel indices (M, 2) as (row, col)).
    """
    h, w = depth.shape
    rows, cols = np.mgrid[0:h:stride, 0:w:stride]
    d = depth[rows, cols]
    valid = np.isfinite(d) & (d > 0)
    rows, cols, d = rows[valid], cols[valid], d[valid].astype(np.float64)
    pix = np.stack([cols + pixel_center, rows + pixel_center, np.ones_like(d)], 0)
    cam = np.linalg.solve(np.asarray(K, np.float64), pix) * d  # (3, M)
    T = np.asarray(world_from_camera, np.float64)
    world = (T[:3, :3] @ cam + T[:3, 3:4]).T
    return world, np.stack([rows, cols], 1)


@lru_cache(maxsize=64)
def _load_camera_file(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
        views = meta["drone"]
        if not isinstance(views, list):
            raise TypeError("'drone' is not a list")
        return meta
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: malformed camera file ({e}); expected a 'drone' list") from None


def find_view(image: Path) -> tuple[Path, dict[str, Any]]:
    """Locate the camera record of a drone image of the synthetic layout.

    Walks up from the image to the region root holding ``cameras/<loc>.json`` (``<loc>`` = the
    image's folder name) and returns (region root, the matching entry of its ``drone`` list).
    Entries match on the relative image path, else on the file name (the test split holds the
    same images under ``query_drone`` and ``gallery_drone``).
    """
    image = Path(image).resolve()
    loc = image.parent.name
    for root in image.parents:
        cam_file = root / "cameras" / f"{loc}.json"
        if cam_file.is_file():
            views = _load_camera_file(cam_file)["drone"]
            rel = image.relative_to(root).as_posix()
            for view in views:
                if view.get("image") == rel:
                    return root, view
            for view in views:
                if Path(str(view.get("image", ""))).name == image.name:
                    return root, view
            raise DataError(f"{cam_file}: no 'drone' entry for image {rel}")
    raise DataError(
        f"{image}: no cameras/{loc}.json found above this image; the depth backend needs the "
        "synthetic layout (cameras/<loc>.json + depth/<loc>/<stem>.npy)"
    )


def _read_view(image: Path, root: Path, view: dict[str, Any]) -> tuple[np.ndarray, ...]:
    try:
        depth_path = root / view["depth"]
        K = np.asarray(view["K"], np.float64).reshape(3, 3)
        T = np.asarray(view["world_from_camera"], np.float64).reshape(4, 4)
    except (KeyError, ValueError, TypeError) as e:
        raise DataError(
            f"camera entry of {image}: expected 'depth', 'K' (3x3), 'world_from_camera' (4x4): {e}"
        ) from None
    try:
        depth = np.load(depth_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{depth_path}: cannot read depth map ({e})") from None
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise DataError(f"{depth_path}: expected an (H, W) depth map, got shape {depth.shape}")
    return depth, K, T


class DepthFusionBackend(ReconBackend):
    """Fuse per-view depth maps + cameras of the synthetic layout into one cloud."""

    name = "depth"
    default_conf = {
        "stride": 2,  # pixel subsampling per view
        "pixel_center": 0.5,
        "max_depth": 0.0,  # > 0: drop points farther than this (metres)
        "colors": True,
        "min_views": 1,
    }

    def reconstruct(self, images: list[Path], work_dir: Path) -> PointCloud:
        from PIL import Image

        pts, cols, used = [], [], 0
        for image in images:
            root, view = find_view(Path(image))
            depth, K, T = _read_view(Path(image), root, view)
            if self.conf["max_depth"] > 0:
                depth = np.where(depth <= self.conf["max_depth"], depth, 0)
            xyz, pix = unproject_depth(
                depth, K, T, int(self.conf["stride"]), float(self.conf["pixel_center"])
            )
            if len(xyz) == 0:
                continue
            used += 1
            pts.append(xyz)
            if self.conf["colors"]:
                rgb = np.asarray(Image.open(image).convert("RGB"))
                if rgb.shape[:2] != depth.shape:
                    raise DataError(
                        f"{image}: image size {rgb.shape[1]}x{rgb.shape[0]} differs from its "
                        f"depth map {depth.shape[1]}x{depth.shape[0]}"
                    )
                cols.append(rgb[pix[:, 0], pix[:, 1]])
        if used < self.conf["min_views"]:
            raise SceneFailed(f"no valid depth in {len(images)} views")
        xyz = np.concatenate(pts)
        rgb = np.concatenate(cols) if cols else None
        info = {"images_used": len(images), "images_registered": used, "gravity_aligned": True}
        return PointCloud(xyz, rgb, info=info)
