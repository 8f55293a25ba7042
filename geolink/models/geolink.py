"""The GeoLink training model: 2D encoder (shared by both views) + 3D branch + objective.

Only ``encode_image`` is used at inference; the 3D branch (Point-NN descriptor -> MME) and the
losses exist for training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from geolink.losses.total import GeoLinkLoss, LossConfig
from geolink.models.image_encoder import ImageEncoder, ImageEncoderConfig
from geolink.models.mme import MME
from geolink.models.point_nn import PointNN
from geolink.registries import POINT_ENCODERS, POINT_HEADS


@dataclass
class PointBranchConfig:
    enabled: bool = True  # false = the 2D baseline (CV-Cities)
    encoder: str = "point_nn"
    num_points: int = 1024
    stages: int = 4
    embed_dim: int = 72
    k: int = 90
    alpha: float = 1000.0
    beta: float = 100.0
    lga_std: str = "cloud"  # cloud (ours) | batch (original Point-NN)
    head: str = "mme"  # mme | linear (the "Baseline" row of Table 5 without MME)
    # none (paper) | batch: standardise each Point-NN dimension with batch statistics (running
    # statistics at eval) before the head; ours, for descriptors that differ little across scenes
    input_norm: str = "none"
    experts: int = 3
    expert_channels: int = 1024
    expert_dilations: list[int] = field(default_factory=list)  # empty = all 1 (released code)


@dataclass
class ModelConfig:
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    point: PointBranchConfig = field(default_factory=PointBranchConfig)
    logit_scale_init: float = math.log(1 / 0.07)


# The 3D branch's parts, registered by name in geolink.registries (model.point.encoder/head).
def point_nn(p: PointBranchConfig) -> PointNN:
    return PointNN(p.stages, p.embed_dim, p.k, p.alpha, p.beta, p.lga_std)


def mme_head(p: PointBranchConfig, in_dim: int, dim: int) -> nn.Module:
    return MME(in_dim, p.experts, p.expert_channels, dim, p.expert_dilations or None)


def linear_head(p: PointBranchConfig, in_dim: int, dim: int) -> nn.Module:
    """Table 5's "Baseline" row without MME: one linear map."""
    return nn.Linear(in_dim, dim)


class GeoLink(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None, loss: LossConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        self.image_encoder = ImageEncoder(cfg.image)
        dim = self.image_encoder.out_dim
        self.point_encoder: PointNN | None = None
        self.point_head: nn.Module | None = None
        p = cfg.point
        if p.enabled:
            self.point_encoder = POINT_ENCODERS.build(p.encoder, p)
            in_dim = self.point_encoder.out_dim
            if p.input_norm == "batch":
                self.point_norm: nn.Module = nn.BatchNorm1d(in_dim, affine=False)
            elif p.input_norm == "none":
                self.point_norm = nn.Identity()
            else:
                raise ValueError(f"unknown point input_norm '{p.input_norm}' (none | batch)")
            self.point_head = POINT_HEADS.build(p.head, p, in_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.logit_scale_init)))
        self.criterion = GeoLinkLoss(loss or LossConfig(), dim, with_points=p.enabled)

    def encode_image(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, D) L2-normalised: the 2D-only inference path."""
        return self.image_encoder(images)

    def encode_points(
        self, points: Tensor | None = None, point_features: Tensor | None = None
    ) -> Tensor:
        """3D embedding (B, D) from raw clouds (B, N, 3) or cached Point-NN descriptors (B, 1152)."""
        if self.point_head is None or self.point_encoder is None:
            raise RuntimeError("this model has no 3D branch (model.point.enabled=false)")
        if point_features is None:
            if points is None:
                raise ValueError("encode_points needs points or point_features")
            point_features = self.point_encoder(points)
        return self.point_head(self.point_norm(point_features))

    def forward(
        self,
        drone: Tensor,
        satellite: Tensor,
        points: Tensor | None = None,
        point_features: Tensor | None = None,
        gather: Callable[[Tensor], Tensor] | None = None,
        from_trunk: bool = False,
    ) -> dict[str, Tensor]:
        """One training batch of B distinct locations.

        Args:
            drone, satellite: (B, 3, H, W) images; points: (B, N, 3) clouds or
            point_features: (B, 1152) cached Point-NN descriptors (3D branch only).
            gather: maps local (B, D) embeddings to the global batch before the losses (all-gather
            across ranks in distributed training) so negatives span every rank's samples.
            from_trunk: ``drone`` and ``satellite`` are activations of the frozen backbone trunk
            (a frozen-feature cache), not images.
        Returns:
            dict with ``drone_emb``, ``satellite_emb`` (B, D), ``point_emb`` (B, D) when the 3D
            branch is on, every loss term (``nce_*``, ``L_cc``, ``L_sc``, ``L_rd``, ``L_ga``),
            and the total ``loss``.
        """
        # One backbone call for both views: shared weights, half the Python overhead.
        both = torch.cat([drone, satellite])
        emb = self.image_encoder.from_trunk(both) if from_trunk else self.encode_image(both)
        drone_emb, satellite_emb = emb.split(drone.shape[0])
        out: dict[str, Tensor] = {"drone_emb": drone_emb, "satellite_emb": satellite_emb}
        point_emb = None
        if self.point_head is not None and (points is not None or point_features is not None):
            point_emb = self.encode_points(points, point_features)
            out["point_emb"] = point_emb
        if gather is not None:
            drone_emb, satellite_emb = gather(drone_emb), gather(satellite_emb)
            point_emb = gather(point_emb) if point_emb is not None else None
        out.update(self.criterion(drone_emb, satellite_emb, point_emb, self.logit_scale))
        return out
