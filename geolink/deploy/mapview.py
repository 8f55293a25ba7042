"""A picture of an index's area: its tiles pasted at their positions (no external map service).

Used by ``geolink track`` (the trajectory picture) and the service's ``/map.png`` (the page's
map). Positions are east/north metres about ``origin`` (the project's equirectangular geodesy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from geolink.deploy.tiles import read_tile_source
from geolink.errors import DataError, GeoLinkError
from geolink.utils.geodesy import latlon_to_enu


@dataclass(frozen=True)
class MapFrame:
    """Pixel (col, row) = ((east - x0) * scale, (y1 - north) * scale), metres about ``origin``."""

    origin: tuple[float, float]
    x0: float
    y1: float
    scale: float  # pixels per metre
    width: int
    height: int

    def to_px(self, lat: float, lon: float) -> tuple[int, int]:
        e, n = latlon_to_enu(lat, lon, self.origin)
        return int(round((float(e) - self.x0) * self.scale)), int(
            round((self.y1 - float(n)) * self.scale)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": list(self.origin), "x0": self.x0, "y1": self.y1, "scale": self.scale,
            "width": self.width, "height": self.height,
        }  # fmt: skip


def tiles_origin(tiles: list[dict[str, Any]]) -> tuple[float, float]:
    """The mean lat/lon of the tiles with a position: the local frame's origin."""
    pts = [
        (t["lat"], t["lon"]) for t in tiles if t.get("lat") is not None and t.get("lon") is not None
    ]
    if not pts:
        raise DataError("the index's tiles have no positions")
    return float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts]))


def tile_mosaic(
    tiles: list[dict[str, Any]], origin: tuple[float, float], max_px: int = 1400
) -> tuple[np.ndarray, MapFrame]:
    """Paste every tile with a position and a footprint (north-up) into one uint8 RGB canvas
    whose longest side is ``max_px``; a tile whose pixels cannot be read is left grey."""
    tiles = [
        t for t in tiles
        if t.get("lat") is not None and t.get("lon") is not None and t.get("footprint_m")
    ]  # fmt: skip
    if not tiles:
        raise DataError("the index's tiles need positions and footprint_m to draw a map")
    e, n = latlon_to_enu(
        np.array([t["lat"] for t in tiles]), np.array([t["lon"] for t in tiles]), origin
    )
    half = np.array([t["footprint_m"] for t in tiles], np.float64) / 2
    x0, x1, y0, y1 = (e - half).min(), (e + half).max(), (n - half).min(), (n + half).max()
    scale = max_px / max(x1 - x0, y1 - y0)
    w, h = int(math.ceil((x1 - x0) * scale)), int(math.ceil((y1 - y0) * scale))
    canvas = np.full((h, w, 3), 40, np.uint8)
    for t, te, tn, hf in zip(tiles, e, n, half, strict=True):
        size = max(1, int(round(2 * hf * scale)))
        c, r = int(round((te - hf - x0) * scale)), int(round((y1 - tn - hf) * scale))
        try:
            img = cv2.resize(
                read_tile_source(t["source"]), (size, size), interpolation=cv2.INTER_AREA
            )
        except (GeoLinkError, OSError):  # its pixels are gone: left grey
            continue
        r0, c0, r1, c1 = max(r, 0), max(c, 0), min(r + size, h), min(c + size, w)
        canvas[r0:r1, c0:c1] = img[r0 - r : r1 - r, c0 - c : c1 - c]
    frame = MapFrame(origin, float(x0), float(y1), float(scale), w, h)
    return canvas, frame
