"""vCLUB: the variational contrastive log-ratio upper bound of mutual information (Cheng et al.,
ICML 2020), used by GeoLink's geometric-aware semantic refinement (Eq. 8-10).

q_θ(y|x) = N(μ(x), diag exp(logvar(x))), both MLPs with hidden/2 units, logvar ending in tanh.
``forward`` is the MI estimate that the main model minimises; ``learning_loss`` is the negative
log-likelihood that trains q_θ (its own optimiser, on detached features).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CLUB(nn.Module):
    def __init__(self, x_dim: int, y_dim: int, hidden: int = 4096):
        super().__init__()
        h = max(hidden // 2, 1)
        self.p_mu = nn.Sequential(nn.Linear(x_dim, h), nn.ReLU(), nn.Linear(h, y_dim))
        self.p_logvar = nn.Sequential(
            nn.Linear(x_dim, h), nn.ReLU(), nn.Linear(h, y_dim), nn.Tanh()
        )

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.p_mu(x), self.p_logvar(x)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """MI upper-bound estimate for paired rows of x (N, Dx) and y (N, Dy); scalar.

        positive_i = -Σ_d (μ_id - y_id)² / (2 e^{lv_id});
        negative_i = -Σ_d mean_j (y_jd - μ_id)² / (2 e^{lv_id});  MI ≈ mean_i(positive - negative).
        The negative term is expanded as mean_j (y_j - μ)² = E[y²] - 2μE[y] + μ² so it needs
        O(N·D) memory instead of O(N²·D). That expansion cancels (E[y²] and μ² nearly equal
        2μE[y]), so the arithmetic after the two MLPs runs in float32 even under bf16 autocast;
        in float32 the result is unchanged.
        """
        mu, logvar = self._params(x)
        mu, logvar, y = mu.float(), logvar.float(), y.float()
        inv = 0.5 * torch.exp(-logvar)
        positive = -((mu - y) ** 2 * inv).sum(-1)
        y_mean = y.mean(0, keepdim=True)
        y2_mean = (y**2).mean(0, keepdim=True)
        negative = -((y2_mean - 2 * mu * y_mean + mu**2) * inv).sum(-1)
        return (positive - negative).mean()

    def log_likelihood(self, x: Tensor, y: Tensor) -> Tensor:
        """Unnormalised Gaussian log-likelihood (×2) averaged over rows. The estimator trains
        outside autocast, in its own parameters' dtype: inputs are cast to it (a bf16 point
        embedding from an autocast forward would otherwise not multiply with fp32 weights)."""
        dtype = self.p_mu[0].weight.dtype
        x, y = x.to(dtype), y.to(dtype)
        mu, logvar = self._params(x)
        return (-((mu - y) ** 2) / logvar.exp() - logvar).sum(-1).mean()

    def learning_loss(self, x: Tensor, y: Tensor) -> Tensor:
        return -self.log_likelihood(x, y)
