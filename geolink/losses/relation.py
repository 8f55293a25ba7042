"""Relational distillation (Eq. 11-13): match the pairwise-distance structure of a student batch
to that of the 3D teacher batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _pairwise(x: Tensor) -> Tensor:
    # Exact Euclidean distances (no matmul trick: the diagonal must be exactly 0).
    return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")


def relation_distillation(
    student: Tensor, teacher: Tensor, normalization: str = "sum", detach_teacher: bool = False
) -> Tensor:
    """Distance-affinity MSE between a student (B, Ds) and a teacher (B, Dt) batch.

    ``sum`` (the paper, Eq. 11-13): A(i,j) = ‖x_i - x_j‖ / Σ_{m≠n} ‖x_m - x_n‖ for i ≠ j and
    loss = Σ_{i≠j} (A_S - A_T)² / (B(B-1)). Invariant to a global scale of either side.
    ``mean`` (the released code): D / mean(D) over the full B×B matrix (diagonal included), + 1e-8,
    loss = MSE over all B² entries.
    """
    if student.shape[0] != teacher.shape[0]:
        raise ValueError("student and teacher batches differ in size")
    if detach_teacher:
        teacher = teacher.detach()
    b = student.shape[0]
    ds, dt = _pairwise(student), _pairwise(teacher)
    if normalization == "sum":
        if b < 2:
            return student.sum() * 0.0
        off = ~torch.eye(b, dtype=torch.bool, device=student.device)
        a_s = ds[off] / ds[off].sum().clamp_min(1e-12)
        a_t = dt[off] / dt[off].sum().clamp_min(1e-12)
        return ((a_s - a_t) ** 2).sum() / (b * (b - 1))
    if normalization == "mean":
        return F.mse_loss(ds / ds.mean() + 1e-8, dt / dt.mean() + 1e-8)
    raise ValueError(f"unknown normalization '{normalization}' (sum | mean)")
