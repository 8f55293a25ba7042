"""Point-cloud primitives in pure torch: farthest point sampling and k-nearest neighbours.

No CUDA extensions: these run anywhere and are deterministic (FPS starts at index 0, ties in
kNN resolve to the lower index through ``torch.topk`` on a stable distance).
"""

from __future__ import annotations

import torch
from torch import Tensor


def farthest_point_sample(xyz: Tensor, n: int) -> Tensor:
    """Greedy farthest point sampling.

    Args:
        xyz: (B, N, 3) points.
        n: number of points to keep (``n <= N``).
    Returns:
        (B, n) long indices into the N points; the first index is always 0.
    """
    b, num, _ = xyz.shape
    if n > num:
        raise ValueError(f"cannot sample {n} points from a cloud of {num}")
    idx = torch.zeros(b, n, dtype=torch.long, device=xyz.device)
    dist = torch.full((b, num), float("inf"), dtype=xyz.dtype, device=xyz.device)
    farthest = torch.zeros(b, dtype=torch.long, device=xyz.device)
    batch = torch.arange(b, device=xyz.device)
    for i in range(n):
        idx[:, i] = farthest
        centre = xyz[batch, farthest].unsqueeze(1)  # (B,1,3)
        d = ((xyz - centre) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        farthest = dist.argmax(-1)
    return idx


def knn(query: Tensor, ref: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` nearest ``ref`` points for every ``query`` point.

    Args:
        query: (B, M, 3); ref: (B, N, 3).
    Returns:
        (B, M, k) long indices into ``ref``, nearest first (squared Euclidean distance).
    """
    if k > ref.shape[1]:
        raise ValueError(f"k={k} exceeds the {ref.shape[1]} reference points")
    d = torch.cdist(query, ref, compute_mode="donot_use_mm_for_euclid_dist")
    return d.topk(k, dim=-1, largest=False, sorted=True).indices


def gather(x: Tensor, idx: Tensor) -> Tensor:
    """Gather rows of ``x`` (B, N, C) with ``idx`` (B, ...) -> (B, ..., C)."""
    b = x.shape[0]
    flat = idx.reshape(b, -1)
    out = torch.gather(x, 1, flat.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return out.reshape(*idx.shape, x.shape[-1])
