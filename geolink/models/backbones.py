"""Backbones through timm, plus a few named presets (timm-style) for CPU work and tests.

A backbone returns a (B, C, h, w) feature map: ViTs drop their prefix tokens and reshape patch
tokens to the grid; CNNs give their last feature map.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from geolink.errors import ConfigError, GeoLinkError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


# Aliases on top of every timm model name. The test models are tiny so that the real code
# path (timm ViT + MixVPR) runs on a CPU in milliseconds.
ALIASES: dict[str, BackboneSpec] = {
    "dinov2_vitb14": BackboneSpec("vit_base_patch14_dinov2"),
    "dinov2_vits14": BackboneSpec("vit_small_patch14_dinov2"),
    "test_vit": BackboneSpec(
        "vit_small_patch14_dinov2", dict(embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)
    ),
    "test_cnn": BackboneSpec("resnet10t"),
}


class WeightsError(GeoLinkError):
    """Pretrained weights could not be found or loaded."""


def _is_vit(model: nn.Module) -> bool:
    return hasattr(model, "patch_embed") and hasattr(model, "blocks")


class Backbone(nn.Module):
    """A timm model exposed as a feature-map extractor."""

    def __init__(
        self,
        name: str,
        img_size: int,
        pretrained: str | None = None,
        frozen_blocks: int = 0,
        remove_final_norm: bool = True,
    ):
        super().__init__()
        import timm

        spec = ALIASES.get(name, BackboneSpec(name))
        kwargs = dict(spec.kwargs)
        self.name = name
        self.img_size = img_size
        try:
            probe = timm.models.get_pretrained_cfg(spec.timm_name)
        except Exception:  # noqa: BLE001 - timm raises various errors for unknown names
            probe = None
        if not timm.is_model(spec.timm_name.split(".")[0]) and probe is None:
            raise ConfigError(
                f"unknown backbone '{name}': not a timm model nor one of {sorted(ALIASES)}"
            )
        is_vit_name = "vit" in spec.timm_name or "deit" in spec.timm_name
        if is_vit_name:
            kwargs.setdefault("img_size", img_size)
            kwargs.setdefault("num_classes", 0)
        else:
            kwargs.setdefault("num_classes", 0)
        hub = pretrained not in (None, "", "none") and not _is_local(pretrained)
        model_name = spec.timm_name
        if hub and pretrained not in ("timm", "default"):
            model_name = pretrained  # e.g. "hf-hub:timm/vit_base_patch14_dinov2.lvd142m"
        try:
            self.model = timm.create_model(model_name, pretrained=hub, **kwargs)
        except (OSError, RuntimeError, ValueError) as e:
            if not hub:
                raise
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
            raise WeightsError(
                f"could not fetch pretrained weights '{pretrained}' for backbone '{name}' "
                f"(timm model '{model_name}') from the Hugging Face hub"
                + (" because HF_HUB_OFFLINE=1" if offline else "")
                + f": {type(e).__name__}. Download the weights on a machine with internet and "
                "pass model.pretrained=/path/to/weights.(pth|safetensors), or use "
                "model.pretrained=none for random initialisation."
            ) from e
        self.is_vit = _is_vit(self.model)
        if self.is_vit and remove_final_norm:
            self.model.norm = nn.Identity()  # CV-Cities / GeoLink use un-normalised patch tokens
        if pretrained and _is_local(pretrained):
            load_backbone_weights(self.model, Path(pretrained))
        if self.is_vit:
            self.num_prefix_tokens = int(getattr(self.model, "num_prefix_tokens", 1))
            patch = self.model.patch_embed.patch_size
            patch = patch[0] if isinstance(patch, (tuple, list)) else patch
            self.grid = (img_size // patch, img_size // patch)
            self.out_channels = int(self.model.embed_dim)
        else:
            info = self.model.feature_info[-1]
            self.grid = (img_size // info["reduction"], img_size // info["reduction"])
            self.out_channels = int(info["num_chs"])
        self.freeze(frozen_blocks)

    def freeze(self, frozen_blocks: int) -> None:
        """Freeze the patch embedding and blocks[0:frozen_blocks] of a ViT (CV-Cities recipe)."""
        if frozen_blocks <= 0:
            return
        if not self.is_vit:
            raise ConfigError(
                f"model.frozen_blocks={frozen_blocks} is only defined for ViT backbones; "
                f"'{self.name}' is not one (set model.frozen_blocks=0)"
            )
        if frozen_blocks > len(self.model.blocks):
            raise ConfigError(
                f"model.frozen_blocks={frozen_blocks} but '{self.name}' has "
                f"{len(self.model.blocks)} blocks"
            )
        for p in self.model.patch_embed.parameters():
            p.requires_grad_(False)
        for blk in self.model.blocks[:frozen_blocks]:
            for p in blk.parameters():
                p.requires_grad_(False)

    def forward(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) -> feature map (B, C, h, w)."""
        feats = self.model.forward_features(images)
        if self.is_vit:
            tokens = feats[:, self.num_prefix_tokens :]
            b, n, c = tokens.shape
            h, w = self.grid
            if n != h * w:
                raise ValueError(
                    f"backbone '{self.name}' gave {n} patch tokens, expected {h}x{w} for "
                    f"{self.img_size}px input; feed images of the configured size"
                )
            return tokens.transpose(1, 2).reshape(b, c, h, w)
        return feats


def _is_local(pretrained: str | None) -> bool:
    if not pretrained:
        return False
    return pretrained.endswith((".pth", ".pt", ".bin", ".safetensors")) or os.path.sep in pretrained


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Read a weights file safely (.safetensors, or torch with weights_only=True)."""
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any decode failure with the file name
        raise WeightsError(f"could not read weights from {path}: {e}") from e
    for key in ("model", "state_dict", "teacher"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    return sd


def load_backbone_weights(model: nn.Module, path: Path) -> None:
    """Load a local checkpoint into a timm model; accepts original DINOv2 key names.

    Positional embeddings are resampled to the model's grid (e.g. DINOv2's 518px 37x37 grid to
    448px 32x32), ``mask_token`` is dropped, common wrappers (``module.``, ``backbone.``) are
    stripped.
    """
    sd = read_state_dict(path)
    for prefix in ("module.", "backbone.", "model."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    if _is_vit(model):
        from timm.models.vision_transformer import checkpoint_filter_fn

        sd = checkpoint_filter_fn(sd, model)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith(("head.", "fc.", "classifier."))]
    if missing:
        raise WeightsError(
            f"{path} does not match backbone {type(model).__name__}: {len(missing)} missing keys "
            f"(first: {missing[:3]}); unexpected: {list(unexpected)[:3]}"
        )
    if unexpected:
        logger.info(
            "ignored %d unexpected keys in %s (e.g. %s)", len(unexpected), path, unexpected[:3]
        )
    logger.info("loaded backbone weights from %s", path)
