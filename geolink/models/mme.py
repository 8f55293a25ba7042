"""Mixture of Multi-Expert (MME) block: the trainable head of the 3D branch (training only).

The point descriptor p (B, D_in) is read as a one-channel sequence of length D_in. Each of E
experts is Conv1d(1 -> C, kernel 3) + BN + ReLU + global average over the sequence; a softmax gate
(MLP D_in -> D_in/2 -> E) weights them; a shared 1x1-conv expert adds a holistic feature:
out = concat[g_1·e_1, ..., g_E·e_E, shared]. With E = 3 and C = 1024 that is exactly 4096-d
(the paper / released code). For E != 3 a final linear layer maps (E+1)·C back to ``out_dim``
so the 3D embedding always matches the image descriptor (documented in docs/fidelity.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _expert(channels: int, kernel: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(1, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation),
        nn.BatchNorm1d(channels),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool1d(1),
    )


class MME(nn.Module):
    def __init__(
        self,
        in_dim: int = 1152,
        num_experts: int = 3,
        expert_channels: int = 1024,
        out_dim: int = 4096,
        dilations: list[int] | None = None,
    ):
        super().__init__()
        if not 1 <= num_experts <= 64:
            raise ValueError(f"num_experts must be in 1..64, got {num_experts}")
        dilations = list(dilations) if dilations else [1] * num_experts
        if len(dilations) != num_experts:
            raise ValueError(f"need {num_experts} dilations, got {dilations}")
        self.experts = nn.ModuleList(_expert(expert_channels, 3, d) for d in dilations)
        self.shared = _expert(expert_channels, 1, 1)
        self.gate = nn.Sequential(
            nn.Linear(in_dim, in_dim // 2),
            nn.ReLU(inplace=True),
            nn.Linear(in_dim // 2, num_experts),
        )
        concat = (num_experts + 1) * expert_channels
        self.proj = nn.Identity() if concat == out_dim else nn.Linear(concat, out_dim)
        self.out_dim = out_dim

    def forward(self, p: Tensor) -> Tensor:
        """p (B, D_in) -> (B, out_dim) (not normalised; the losses normalise)."""
        g = self.gate(p).softmax(dim=-1)  # (B, E)
        seq = p.unsqueeze(1)  # (B, 1, D_in)
        experts = [e(seq).squeeze(-1) * g[:, i : i + 1] for i, e in enumerate(self.experts)]
        experts.append(self.shared(seq).squeeze(-1))
        return self.proj(torch.cat(experts, dim=-1))
