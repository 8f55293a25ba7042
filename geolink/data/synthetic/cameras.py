"""Camera models of the synthetic benchmark and their OpenGL equivalents.

Conventions (also written into every ``cameras/<loc>.json``):

- World frame: metres, local east-north-up (x east, y north, z up).
- ``world_from_camera``: 4x4, OpenCV camera axes (x right, y down, z forward).
- Pixel (col i, row j) has its centre at (i + 0.5, j + 0.5) (COLMAP convention), so the
  principal point of a W x H image is (W / 2, H / 2).
- Perspective: ``u = fx * X / Z + cx``, ``v = fy * Y / Z + cy`` in camera coordinates.
- Orthographic (satellite): ``u = X / m_per_px + W / 2``, ``v = Y / m_per_px + H / 2``; depth is Z.
"""

from __future__ import annotations

import numpy as np

from geolink.utils.camera import intrinsics  # noqa: F401 - re-exported
from geolink.utils.geodesy import enu_to_latlon, latlon_to_enu  # noqa: F401 - re-exported


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """4x4 world_from_camera (OpenCV axes) of a camera at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking straight down: keep north at the image top
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def drone_pose(
    east: float,
    north: float,
    altitude: float,
    yaw_deg: float,
    pitch_deg: float,
    roll_deg: float = 0.0,
) -> np.ndarray:
    """world_from_camera (OpenCV axes) of a drone camera at (east, north, altitude).

    Attitude: ``yaw_deg`` is the heading of the image top, clockwise from north; ``pitch_deg``
    tilts the optical axis from nadir (0) towards that heading; ``roll_deg`` turns the camera
    about its optical axis (clockwise in the image). A nadir camera with yaw 0 has image right =
    east and image top = north.
    """
    yaw, tilt, roll = np.deg2rad([yaw_deg, pitch_deg, roll_deg])
    h = np.array([np.sin(yaw), np.cos(yaw), 0.0])  # heading
    up = np.array([0.0, 0.0, 1.0])
    x = np.cross(h, up)  # image right
    y = -np.cos(tilt) * h - np.sin(tilt) * up  # image down
    z = -np.cos(tilt) * up + np.sin(tilt) * h  # optical axis
    x, y = np.cos(roll) * x + np.sin(roll) * y, -np.sin(roll) * x + np.cos(roll) * y
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, (east, north, altitude)
    return T


def satellite_pose(center_xyz: np.ndarray, height_m: float) -> np.ndarray:
    """world_from_camera of the nadir camera: image right = east, image down = south."""
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])
    T[:3, 3] = np.asarray(center_xyz, np.float64) + [0, 0, height_m]
    return T


def orbit_poses(
    rings: list[tuple[float, float, int]], target: np.ndarray, start_deg: float
) -> list[tuple[np.ndarray, float, float]]:
    """Drone poses on circles around ``target``: one ring per (altitude, radius, n_views).

    Rings are visited in order; each ring's azimuths are staggered by half a step from the
    previous one, so consecutive images form a U1652-like descending spiral.
    Returns [(world_from_camera 4x4, altitude, radius)].
    """
    out = []
    for k, (alt, radius, n) in enumerate(rings):
        step = 360.0 / n
        for i in range(n):
            az = np.deg2rad(start_deg + i * step + 0.5 * step * (k % 2))
            eye = np.array([radius * np.sin(az), radius * np.cos(az), alt]) + [
                target[0],
                target[1],
                0,
            ]
            out.append((look_at(eye, target), float(alt), float(radius)))
    return out


def gl_view(world_from_camera: np.ndarray) -> np.ndarray:
    """OpenGL view matrix (camera looks down -z, y up) from an OpenCV world_from_camera."""
    return np.diag([1.0, -1.0, -1.0, 1.0]) @ np.linalg.inv(world_from_camera)


def gl_perspective(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL projection reproducing the pinhole ``K`` (pixel centres at +0.5)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array(
        [
            [2 * fx / width, 0, 1 - 2 * cx / width, 0],
            [0, 2 * fy / height, 2 * cy / height - 1, 0],
            [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, -1, 0],
        ]
    )


def gl_ortho(half_w: float, half_h: float, near: float, far: float) -> np.ndarray:
    return np.array(
        [
            [1 / half_w, 0, 0, 0],
            [0, 1 / half_h, 0, 0],
            [0, 0, -2 / (far - near), -(far + near) / (far - near)],
            [0, 0, 0, 1],
        ]
    )


def sun_direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector pointing from the ground towards the sun (azimuth clockwise from north)."""
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.array([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])


def backproject(depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """World points of every pixel of a perspective z-depth map. (H, W) -> (H, W, 3)."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    X = np.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
    return X @ world_from_camera[:3, :3].T + world_from_camera[:3, 3]
