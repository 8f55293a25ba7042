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
from geolink.models.packaged_weights import PACKAGED, InputRenorm, load_packaged_weights
from geolink.utils.digest import tensors_digest
from geolink.utils.normalization import IMAGENET_MEAN, IMAGENET_STD
from geolink.utils.registry import Registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


# Aliases on top of every timm model name. The test models are tiny so that the real code
# path (timm ViT + MixVPR) runs on a CPU in milliseconds.
ALIASES: Registry[BackboneSpec] = Registry("backbone alias")
ALIASES.add("dinov2_vitb14", BackboneSpec("vit_base_patch14_dinov2"))
ALIASES.add("dinov2_vits14", BackboneSpec("vit_small_patch14_dinov2"))
ALIASES.add(
    "test_vit",
    BackboneSpec(
        "vit_small_patch14_dinov2", dict(embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)
    ),
)
ALIASES.add("test_cnn", BackboneSpec("resnet10t"))


class WeightsError(GeoLinkError):
    """Pretrained weights could not be found or loaded."""


def _is_vit(model: nn.Module) -> bool:
    return hasattr(model, "patch_embed") and hasattr(model, "blocks")


def _create_timm_model(
    spec: BackboneSpec, name: str, img_size: int, pretrained: str | None
) -> nn.Module:
    """The timm model of ``spec`` (hub weights when ``pretrained`` names them); an unknown name
    is a ConfigError, weights that cannot be fetched a WeightsError that says what to do."""
    import timm

    kwargs = dict(spec.kwargs)
    try:
        probe = timm.models.get_pretrained_cfg(spec.timm_name)
    except Exception:  # noqa: BLE001 - timm raises various errors for unknown names
        probe = None
    if not timm.is_model(spec.timm_name.split(".")[0]) and probe is None:
        raise ConfigError(
            f"unknown backbone '{name}': not a timm model nor one of {ALIASES.names()}"
        )
    is_vit_name = "vit" in spec.timm_name or "deit" in spec.timm_name
    if is_vit_name:
        kwargs.setdefault("img_size", img_size)
        kwargs.setdefault("num_classes", 0)
    else:
        kwargs.setdefault("num_classes", 0)
    hub = pretrained not in (None, "", "none", "package") and not _is_local(pretrained)
    model_name = spec.timm_name
    if hub and pretrained not in ("timm", "default"):
        model_name = pretrained  # e.g. "hf-hub:timm/vit_base_patch14_dinov2.lvd142m"
    try:
        return timm.create_model(model_name, pretrained=hub, **kwargs)
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


class Backbone(nn.Module):
    """A timm model exposed as a feature-map extractor."""

    def __init__(
        self,
        name: str,
        img_size: int,
        pretrained: str | None = None,
        frozen_blocks: int = 0,
        remove_final_norm: bool = True,
        freeze_embeddings: bool = False,
    ):
        super().__init__()
        spec = ALIASES.get(name) if name in ALIASES else BackboneSpec(name)
        self.name = name
        self.img_size = img_size
        self.model = _create_timm_model(spec, name, img_size, pretrained)
        self.is_vit = _is_vit(self.model)
        if self.is_vit and remove_final_norm:
            self.model.norm = nn.Identity()  # CV-Cities / GeoLink use un-normalised patch tokens
        if pretrained == "package":
            load_packaged_weights(self.model, spec.timm_name)
        elif pretrained and _is_local(pretrained):
            load_backbone_weights(self.model, Path(pretrained))
        # Backbones whose weights expect other input statistics than ImageNet's get a fixed
        # affine map in front (follows from the name alone, so checkpoints need no extra key).
        packaged = PACKAGED.get(spec.timm_name)
        self.input_renorm: nn.Module = (
            InputRenorm(IMAGENET_MEAN, IMAGENET_STD, packaged.mean, packaged.std)
            if packaged is not None
            else nn.Identity()
        )
        self._set_geometry(img_size)
        # EfficientNet's depthwise convolutions run about twice as fast in channels-last layout
        # on the CPU (oneDNN); measured in docs/training.md
        self.channels_last = _is_efficientnet(self.model)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.frozen_blocks = 0
        self.freeze(frozen_blocks, freeze_embeddings)

    def _set_geometry(self, img_size: int) -> None:
        """``grid`` (the feature map's rows, cols), ``out_channels`` and, for ViTs,
        ``num_prefix_tokens``."""
        if self.is_vit:
            self.num_prefix_tokens = int(getattr(self.model, "num_prefix_tokens", 1))
            patch = self.model.patch_embed.patch_size
            patch = patch[0] if isinstance(patch, (tuple, list)) else patch
            self.grid = (img_size // patch, img_size // patch)
            self.out_channels = int(self.model.embed_dim)
        else:
            info = self.model.feature_info[-1]
            # forward_features may add a head conv after the last stage (EfficientNet: 1280)
            self.out_channels = int(getattr(self.model, "num_features", info["num_chs"]))
            self.grid = self._cnn_grid(img_size, info["reduction"])

    def _cnn_grid(self, img_size: int, reduction: int) -> tuple[int, int]:
        """The output grid of a CNN: ``ceil(S / reduction)`` for TF-"same" padding, ``S //
        reduction`` for others; read off one tiny forward pass rather than guessed."""
        with torch.no_grad():
            was = self.model.training
            self.model.eval()
            h, w = self.model.forward_features(torch.zeros(1, 3, img_size, img_size)).shape[-2:]
            self.model.train(was)
        return int(h), int(w)

    def freeze(self, frozen_blocks: int, freeze_embeddings: bool = False) -> None:
        """Freeze the stem and blocks[0:frozen_blocks] (ViT: patch embedding + blocks, the
        CV-Cities recipe; EfficientNet: conv stem + stages). The frozen part stays in eval mode
        (fixed BatchNorm statistics). A ViT's positional embedding and prefix tokens stay
        trainable in that recipe; ``freeze_embeddings`` freezes them too, and only then does the
        trunk's output depend on the input alone (what :mod:`geolink.train.frozen_cache`
        needs, see :attr:`trunk_is_frozen`)."""
        if frozen_blocks <= 0:
            return
        if not (self.is_vit or _is_efficientnet(self.model)):
            raise ConfigError(
                f"model.image.frozen_blocks={frozen_blocks} is defined for ViT and EfficientNet "
                f"backbones; '{self.name}' is neither (set model.image.frozen_blocks=0)"
            )
        if frozen_blocks > len(self.model.blocks):
            raise ConfigError(
                f"model.image.frozen_blocks={frozen_blocks} but '{self.name}' has "
                f"{len(self.model.blocks)} blocks"
            )
        for mod in self._frozen_modules(frozen_blocks):
            for p in mod.parameters():
                p.requires_grad_(False)
        if freeze_embeddings:
            for p in self._embedding_parameters():
                p.requires_grad_(False)
        self.frozen_blocks = frozen_blocks
        self.train(self.training)

    def _frozen_modules(self, k: int) -> list[nn.Module]:
        m = self.model
        stem = [m.patch_embed] if self.is_vit else [m.conv_stem, m.bn1]
        return [*stem, *m.blocks[:k]]

    def _embedding_parameters(self) -> list[nn.Parameter]:
        """A ViT's positional embedding and prefix tokens (used by the trunk, not modules)."""
        names = ("pos_embed", "cls_token", "reg_token")
        return [p for n in names if isinstance(p := getattr(self.model, n, None), nn.Parameter)]

    @property
    def trunk_is_frozen(self) -> bool:
        """True when no tensor the trunk uses is trained: its output can be cached."""
        if self.frozen_blocks <= 0:
            return False
        mods = self._frozen_modules(self.frozen_blocks)
        params = [p for m in mods for p in m.parameters()]
        if self.is_vit:
            params += self._embedding_parameters()
        return not any(p.requires_grad for p in params)

    def trunk_fingerprint(self) -> str | None:
        """sha256 of everything :meth:`trunk` computes with (the frozen modules' weights and
        buffers, a ViT's embeddings, the input renormalisation, the layout), or None when the
        trunk is not frozen: equal fingerprints mean equal activations for equal input."""
        if not self.trunk_is_frozen:
            return None
        named = [
            (f"frozen.{i}.{n}", t)
            for i, m in enumerate(self._frozen_modules(self.frozen_blocks))
            for n, t in m.state_dict().items()
        ]
        named += [(f"embedding.{i}", p) for i, p in enumerate(self._embedding_parameters())]
        named += [(f"renorm.{n}", t) for n, t in self.input_renorm.named_buffers()]
        return tensors_digest(named, f"{self.name}|{self.frozen_blocks}|{self.channels_last}")

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        for mod in self._frozen_modules(self.frozen_blocks) if self.frozen_blocks else []:
            mod.eval()
        return self

    def trunk(self, images: Tensor) -> Tensor:
        """The frozen part: images (B, 3, H, W) -> its activations (ViT: tokens (B, N, C);
        CNN: a map (B, C, h, w)). With no frozen blocks, the (renormalised) images."""
        x = self.input_renorm(images)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        k = self.frozen_blocks
        if k == 0:
            return x
        m = self.model
        if self.is_vit:
            x = m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))
        else:
            x = m.bn1(m.conv_stem(x))
        for blk in m.blocks[:k]:
            x = blk(x)
        return x

    def top(self, x: Tensor) -> Tensor:
        """The trainable rest: trunk activations -> feature map (B, C, h, w)."""
        k = self.frozen_blocks
        m = self.model
        if self.channels_last:  # cached activations come back in the default layout
            x = x.contiguous(memory_format=torch.channels_last)
        if k == 0:
            feats = m.forward_features(x)
        else:
            for blk in m.blocks[k:]:
                x = blk(x)
            feats = m.norm(x) if self.is_vit else m.bn2(m.conv_head(x))
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

    def forward(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W), ImageNet-normalised -> feature map (B, C, h, w)."""
        return self.top(self.trunk(images))


def _is_efficientnet(model: nn.Module) -> bool:
    return all(hasattr(model, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2"))


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
