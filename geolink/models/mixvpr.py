"""MixVPR aggregator (Ali-Bey et al., WACV 2023): feature mixing over the flattened spatial axis.

(B, C, H, W) -> stacked token-mixing MLPs on the H·W axis -> channel projection C -> out_channels
-> row projection H·W -> out_rows -> flatten -> L2 normalise: (B, out_channels · out_rows).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FeatureMixer(nn.Module):
    """Residual MLP over the spatial axis, shared across channels: x + W2·ReLU(W1·LN(x))."""

    def __init__(self, hw: int, mlp_ratio: float = 1.0):
        super().__init__()
        hidden = int(hw * mlp_ratio)
        self.norm = nn.LayerNorm(hw)
        self.fc1 = nn.Linear(hw, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, hw)
        for fc in (self.fc1, self.fc2):
            nn.init.trunc_normal_(fc.weight, std=0.02)
            nn.init.zeros_(fc.bias)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, HW)
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class MixVPR(nn.Module):
    def __init__(
        self,
        in_channels: int,
        in_h: int,
        in_w: int,
        out_channels: int = 1024,
        out_rows: int = 4,
        mix_depth: int = 2,
        mlp_ratio: float = 1.0,
    ):
        super().__init__()
        hw = in_h * in_w
        self.in_channels, self.in_h, self.in_w = in_channels, in_h, in_w
        self.mix = nn.Sequential(*[FeatureMixer(hw, mlp_ratio) for _ in range(mix_depth)])
        self.channel_proj = nn.Linear(in_channels, out_channels)
        self.row_proj = nn.Linear(hw, out_rows)
        self.out_dim = out_channels * out_rows

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) feature map -> (B, out_channels·out_rows) L2-normalised."""
        b, c, h, w = x.shape
        if (c, h, w) != (self.in_channels, self.in_h, self.in_w):
            raise ValueError(
                f"MixVPR expects feature maps of {self.in_channels}x{self.in_h}x{self.in_w}, "
                f"got {c}x{h}x{w} (is the input image size the one the model was built for?)"
            )
        x = self.mix(x.flatten(2))  # (B, C, HW)
        x = self.channel_proj(x.transpose(1, 2))  # (B, HW, out_channels)
        x = self.row_proj(x.transpose(1, 2))  # (B, out_channels, out_rows)
        return F.normalize(x.flatten(1), dim=-1)
