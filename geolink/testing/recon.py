"""Tiny analytic scenes for reconstruction tests and benchmarks that must run without OpenGL.

A scene is a textured ground plane (z = 0, metres, east-north-up) seen by drone cameras on an
orbit around the origin, ray-cast exactly in numpy. It is written in the drone part of the
synthetic benchmark layout: ``train/drone/<loc>/image-XX.jpg``, ``depth/<loc>/image-XX.npy`` and
``cameras/<loc>.json`` (``K``, ``world_from_camera`` OpenCV convention), so every backend and the
pipeline can read it. The full procedural benchmark lives in ``geolink.data.synthetic``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def ground_texture(size: int = 1024, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8 texture: multi-scale colour noise plus random discs and boxes."""
    import cv2

    rng = np.random.default_rng(seed)
    tex = np.zeros((size, size, 3), np.float32)
    for cells, amp in ((4, 0.5), (16, 0.35), (64, 0.25), (256, 0.15)):
        noise = rng.random((cells, cells, 3)).astype(np.float32)
        tex += amp * cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 255
    img = tex.astype(np.uint8)
    for _ in range(size // 4):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(3, size // 40))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, c, -1)
        else:
            cv2.rectangle(img, (x, y), (x + r, y + 2 * r), c, -1)
    return img


def look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(4, 4) OpenCV world_from_camera for a camera at ``center`` looking at ``target``."""
    z = target - center
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], 1)
    T[:3, 3] = center
    return T


def render_plane(
    tex: np.ndarray, extent_m: float, K: np.ndarray, T: np.ndarray, size: int, ss: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast the textured plane z = 0 (texture spans [-extent/2, extent/2]^2, north up).

    Returns:
        (image (size, size, 3) uint8, z-depth (size, size) float32, 0 off the texture).
    """
    import cv2

    n = size * ss
    v, u = np.mgrid[0:n, 0:n].astype(np.float64)
    pix = np.stack([(u + 0.5) / ss, (v + 0.5) / ss, np.ones_like(u)], -1)  # pixel centres
    ray_cam = pix @ np.linalg.inv(K).T  # z component 1 -> ray parameter is the z-depth
    ray = ray_cam @ T[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -T[2, 3] / ray[..., 2]
    hit = T[:3, 3] + t[..., None] * ray
    mpp = extent_m / tex.shape[0]
    col = (hit[..., 0] + extent_m / 2) / mpp - 0.5
    row = (extent_m / 2 - hit[..., 1]) / mpp - 0.5
    inside = (t > 0) & (col >= 0) & (row >= 0) & (col <= tex.shape[1] - 1)
    inside &= row <= tex.shape[0] - 1
    img = cv2.remap(tex, col.astype(np.float32), row.astype(np.float32), cv2.INTER_LINEAR)
    img[~inside] = 0
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    depth = np.where(inside, t, 0.0)[ss // 2 :: ss, ss // 2 :: ss]  # centre sample per pixel
    if ss % 2 == 0:  # no sample sits at the pixel centre: the plane is linear in 1/z, average
        inv = np.where(inside, 1.0 / np.where(inside, t, 1.0), 0.0)
        inv = inv.reshape(size, ss, size, ss).mean((1, 3))
        full = inside.reshape(size, ss, size, ss).all((1, 3))
        depth = np.where(full, 1.0 / np.where(full, inv, 1.0), 0.0)
    return img, depth.astype(np.float32)


def make_plane_scene(
    region_root: str | Path,
    loc: str = "0001",
    n_views: int = 8,
    size: int = 160,
    radius: float = 40.0,
    altitude: float = 35.0,
    fov_deg: float = 60.0,
    extent_m: float = 200.0,
    arc_deg: float = 360.0,
    seed: int = 0,
    blank: bool = False,
) -> list[Path]:
    """Write one orbit of drone views of a textured plane; returns the image paths.

    ``blank=True`` writes featureless grey images (a scene no SfM can reconstruct) with the
    same cameras and depth.
    """
    from PIL import Image

    root = Path(region_root)
    tex = ground_texture(1024, seed)
    f = size / 2 / np.tan(np.radians(fov_deg) / 2)
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    views, paths = [], []
    for i in range(n_views):
        a = np.radians(arc_deg) * i / n_views
        alt = altitude * (1.0 + 0.15 * (i % 2))  # two heights: non-coplanar camera centres
        center = np.array([radius * np.cos(a), radius * np.sin(a), alt])
        T = look_at(center, np.zeros(3))
        img, depth = render_plane(tex, extent_m, K, T, size)
        if blank:
            img[:] = 128
        stem = f"image-{i + 1:02d}"
        rel_img = f"train/drone/{loc}/{stem}.jpg"
        rel_depth = f"depth/{loc}/{stem}.npy"
        (root / rel_img).parent.mkdir(parents=True, exist_ok=True)
        (root / rel_depth).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / rel_img, quality=95)
        np.save(root / rel_depth, depth)
        views.append(
            {
                "image": rel_img,
                "depth": rel_depth,
                "K": K.tolist(),
                "world_from_camera": T.tolist(),
                "altitude": float(alt),
                "radius": radius,
                "width": size,
                "height": size,
            }
        )
        paths.append(root / rel_img)
    (root / "cameras").mkdir(parents=True, exist_ok=True)
    meta = {"location": loc, "split": "train", "lat": 0.0, "lon": 0.0, "drone": views}
    (root / "cameras" / f"{loc}.json").write_text(json.dumps(meta))
    return paths
