"""Aligning a reconstruction to ground truth: the least-squares similarity between point sets
(used by the reconstruction benchmark to measure a cloud's error in metres)."""

from __future__ import annotations

import numpy as np


def umeyama_sim3(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity with ``dst ~ s * R @ src + t`` (Umeyama 1991).

    Args:
        src, dst: (N, 3) corresponding points, N >= 3 and not collinear.
    Returns:
        (scale s, rotation R (3, 3), translation t (3,)).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var_s = (xs**2).sum() / len(src)
    s = float(np.trace(np.diag(D) @ S) / var_s)
    return s, R, mu_d - s * R @ mu_s
