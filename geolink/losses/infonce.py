"""Symmetric InfoNCE (Eq. 5) as used by Sample4Geo / CV-Cities / GeoLink."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(
    a: Tensor,
    b: Tensor,
    logit_scale: Tensor | float,
    label_smoothing: float = 0.1,
    form: str = "symmetric",
) -> Tensor:
    """InfoNCE between two batches whose i-th rows are positives.

    Args:
        a, b: (B, D) features (normalised here).
        logit_scale: log of the inverse temperature; s = exp(logit_scale).
        form: ``symmetric`` = ½[CE(s·â b̂ᵀ) + CE(s·b̂ âᵀ)] (the paper); ``legacy`` = the released
            code, whose first-direction logits were overwritten by the self-similarity logits:
            ½[CE(s·â âᵀ) + CE(s·b̂ âᵀ)] + ½[CE(s·â âᵀ) + CE(s·b̂ b̂ᵀ)].
    Returns:
        scalar loss.
    """
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    s = logit_scale.exp() if isinstance(logit_scale, Tensor) else torch.tensor(logit_scale).exp()
    target = torch.arange(a.shape[0], device=a.device)

    def ce(logits: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, label_smoothing=label_smoothing)

    if form == "symmetric":
        logits = s * a @ b.T
        return 0.5 * (ce(logits) + ce(logits.T))
    if form == "legacy":
        aa, bb, ba = s * a @ a.T, s * b @ b.T, s * b @ a.T
        return 0.5 * (ce(aa) + ce(ba)) + 0.5 * (ce(aa) + ce(bb))
    raise ValueError(f"unknown InfoNCE form '{form}' (symmetric | legacy)")
