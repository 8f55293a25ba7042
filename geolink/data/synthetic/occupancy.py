"""What is already on a location's ground while its layout is placed (1 m raster)."""

from __future__ import annotations

import cv2
import numpy as np

OCC_RES = 1.0  # metres per occupancy cell


class Occupancy:
    """A 1 m raster of what is already on the ground; rejects overlapping placements."""

    def __init__(self, half: float):
        self.half = half
        self.n = int(np.ceil(2 * half / OCC_RES))
        self.grid = np.zeros((self.n, self.n), np.uint8)

    def px(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, np.float64)
        return np.stack(
            [(xy[..., 0] + self.half) / OCC_RES, (self.half - xy[..., 1]) / OCC_RES], -1
        )

    def mark_poly(self, poly: np.ndarray, value: int = 1) -> None:
        cv2.fillPoly(self.grid, [np.round(self.px(poly)).astype(np.int32)], value)

    def mark_line(self, pts: np.ndarray, width: float, value: int = 1) -> None:
        t = max(1, int(round(width / OCC_RES)))
        cv2.polylines(self.grid, [np.round(self.px(pts)).astype(np.int32)], False, value, t)

    def free_poly(self, poly: np.ndarray) -> bool:
        p = np.round(self.px(poly)).astype(np.int32)
        x0, y0 = p.min(0)
        x1, y1 = p.max(0) + 1
        if x0 < 0 or y0 < 0 or x1 > self.n or y1 > self.n:
            return False
        tmp = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(tmp, [p - [x0, y0]], 1)
        return not np.any(tmp & self.grid[y0:y1, x0:x1])

    def free_point(self, x: float, y: float) -> bool:
        i, j = int((self.half - y) / OCC_RES), int((x + self.half) / OCC_RES)
        return 0 <= i < self.n and 0 <= j < self.n and self.grid[i, j] == 0

    def free_points(self, xy: np.ndarray) -> np.ndarray:
        p = np.floor(self.px(xy)).astype(int).clip(0, self.n - 1)
        return self.grid[p[:, 1], p[:, 0]] == 0
