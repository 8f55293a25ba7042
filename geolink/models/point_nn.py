"""Point-NN (Zhang et al., CVPR 2023): a non-parametric point-cloud encoder.

Four stages of FPS (halving) -> kNN grouping -> local geometry normalisation -> feature
expansion -> trigonometric geometry weighting w = (f + PE)·PE -> max+mean pooling, then global
max+mean pooling. With embed 72 and 4 stages a 1024-point cloud gives a 1152-d descriptor.

It has no learned weights, so GeoLink computes it once per scene and caches it
(``geolink.recon.features``); training never recomputes it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geolink.models.point_ops import farthest_point_sample, gather, knn


def trig_pos_encoding(xyz: Tensor, channels: int, alpha: float, beta: float) -> Tensor:
    """Trigonometric positional encoding.

    Args:
        xyz: (..., 3) coordinates.
        channels: output channels, a multiple of 6 (sin/cos x 3 axes).
    Returns:
        (..., channels): for each axis (axis-major), for frequency m = 0..F-1 with
        F = channels/6, the pair [sin(beta·x/alpha^(m/F)), cos(beta·x/alpha^(m/F))] (interleaved).
    """
    if channels % 6:
        raise ValueError(f"positional encoding needs channels divisible by 6, got {channels}")
    nfreq = channels // 6
    freq = alpha ** (torch.arange(nfreq, dtype=xyz.dtype, device=xyz.device) / nfreq)
    u = beta * xyz.unsqueeze(-1) / freq  # (..., 3, F)
    pe = torch.stack([u.sin(), u.cos()], dim=-1)  # (..., 3, F, 2)
    return pe.flatten(-3)


class PointNN(nn.Module):
    def __init__(
        self,
        num_stages: int = 4,
        embed_dim: int = 72,
        k: int = 90,
        alpha: float = 1000.0,
        beta: float = 100.0,
        lga_std: str = "cloud",
    ):
        super().__init__()
        if lga_std not in ("cloud", "batch"):
            raise ValueError("lga_std must be 'cloud' or 'batch'")
        self.num_stages, self.embed_dim, self.k = num_stages, embed_dim, k
        self.alpha, self.beta, self.lga_std = alpha, beta, lga_std
        self.out_dim = embed_dim * 2**num_stages
        # Untrained BatchNorm in eval mode with default statistics is x / sqrt(1 + eps).
        self._bn_scale = 1.0 / math.sqrt(1.0 + 1e-5)

    def _std(self, x: Tensor) -> Tensor:
        # The original takes one std over the whole batch tensor; per cloud ("cloud", our
        # default) keeps a scene's feature independent of which scenes share its batch.
        if self.lga_std == "batch":
            return x.std()
        return x.flatten(1).std(dim=1).view(-1, *([1] * (x.dim() - 1)))

    @torch.no_grad()
    def forward(self, points: Tensor) -> Tensor:
        """points (B, N, 3) -> (B, embed_dim·2^num_stages) global descriptor."""
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"expected points of shape (B, N, 3), got {tuple(points.shape)}")
        xyz = points.float()
        feat = trig_pos_encoding(xyz, self.embed_dim, self.alpha, self.beta)  # (B, N, C)
        # Start FPS from the point farthest from the centroid: independent of point order.
        for _ in range(self.num_stages):
            n = xyz.shape[1]
            m = max(n // 2, 1)
            k = min(self.k, n)
            centre_idx = _fps_order_invariant(xyz, m)
            c_xyz, c_feat = gather(xyz, centre_idx), gather(feat, centre_idx)  # (B,M,3),(B,M,C)
            nn_idx = knn(c_xyz, xyz, k)  # (B, M, K)
            n_xyz, n_feat = gather(xyz, nn_idx), gather(feat, nn_idx)  # (B,M,K,3),(B,M,K,C)
            d_feat = n_feat - c_feat.unsqueeze(2)
            d_xyz = n_xyz - c_xyz.unsqueeze(2)
            d_feat = d_feat / (self._std(d_feat) + 1e-5)
            d_xyz = d_xyz / (self._std(d_xyz) + 1e-5)
            f = torch.cat([d_feat, c_feat.unsqueeze(2).expand_as(d_feat)], dim=-1)  # (B,M,K,2C)
            pe = trig_pos_encoding(d_xyz, f.shape[-1], self.alpha, self.beta)
            w = (f + pe) * pe
            pooled = w.max(dim=2).values + w.mean(dim=2)  # (B, M, 2C)
            feat = F.gelu(pooled * self._bn_scale)
            xyz = c_xyz
        return feat.max(dim=1).values + feat.mean(dim=1)


def _fps_order_invariant(xyz: Tensor, m: int) -> Tensor:
    centroid = xyz.mean(dim=1, keepdim=True)
    start = ((xyz - centroid) ** 2).sum(-1).argmax(-1)  # (B,)
    # Rotate each cloud so the start point is at index 0, sample, then map indices back.
    n = xyz.shape[1]
    order = (torch.arange(n, device=xyz.device).unsqueeze(0) + start.unsqueeze(1)) % n
    idx = farthest_point_sample(gather(xyz, order), m)
    return torch.gather(order, 1, idx)


@torch.no_grad()
def encode_point_clouds(
    points: Tensor, batch_size: int = 16, encoder: PointNN | None = None
) -> Tensor:
    """Encode many clouds in batches: (S, N, 3) -> (S, D) float32 on the CPU."""
    encoder = encoder or PointNN()
    out = [encoder(points[i : i + batch_size]).cpu() for i in range(0, len(points), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, encoder.out_dim)
