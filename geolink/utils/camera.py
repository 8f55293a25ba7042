"""Pinhole camera intrinsics, shared by the synthetic renderer and refinement (numpy only)."""

from __future__ import annotations

import numpy as np


def intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """3x3 pinhole K with square pixels and the principal point at the image centre (pixel
    centres at i + 0.5, so the principal point of a W x H image is (W / 2, H / 2))."""
    f = width / (2 * np.tan(np.deg2rad(hfov_deg) / 2))
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
