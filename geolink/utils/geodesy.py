"""The one Earth model of the project: a sphere of radius 6378.137 km (WGS-84's equatorial
radius, what DenseUAV's evaluator uses for its metre accuracy), for the evaluation metrics, the
localizer's errors, GeoTIFF tiling and the synthetic benchmark's coordinates alike.

No torch here: the ONNX (torch-free) localization path uses it.
"""

from __future__ import annotations

import math

import numpy as np

EARTH_RADIUS_M = 6378137.0


def haversine_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres between points in degrees (broadcasts over arrays; a
    float for scalars)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return float(d) if np.ndim(d) == 0 else d


def metres_per_degree(lat: float) -> tuple[float, float]:
    """(metres per degree of latitude, metres per degree of longitude) at latitude ``lat``."""
    m_lat = math.pi * EARTH_RADIUS_M / 180.0
    return m_lat, m_lat * math.cos(math.radians(lat))


def enu_to_latlon(x, y, origin: tuple[float, float]) -> tuple:
    """Local east/north metres -> (lat, lon) degrees, equirectangular about ``origin``."""
    lat0, lon0 = origin
    lat = lat0 + np.rad2deg(np.asarray(y) / EARTH_RADIUS_M)
    lon = lon0 + np.rad2deg(np.asarray(x) / (EARTH_RADIUS_M * np.cos(np.deg2rad(lat0))))
    return lat, lon


def latlon_to_enu(lat, lon, origin: tuple[float, float]) -> tuple:
    """Inverse of :func:`enu_to_latlon`."""
    lat0, lon0 = origin
    y = np.deg2rad(np.asarray(lat) - lat0) * EARTH_RADIUS_M
    x = np.deg2rad(np.asarray(lon) - lon0) * EARTH_RADIUS_M * np.cos(np.deg2rad(lat0))
    return x, y
