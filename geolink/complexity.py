"""Parameter and MAC counts of the 2D inference path (Table 6).

Three conventions, all at batch 1 and the preset's input size:
- ``thop``: what the paper used. thop counts parameters only of leaf modules of known types
  (so ViT positional embeddings, class token and LayerScale gammas are left out) and MACs of
  Conv/Linear/Norm layers, not the attention matmuls (functional ops). Reproduces 90.50 M.
- ``macs_no_attention``: torch's FlopCounterMode with fused attention (not counted on CPU), /2.
- ``macs_with_attention``: the same with attention unfused so q·kᵀ and attn·v are counted.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from torch import nn

from geolink.models.image_encoder import ImageEncoder


def _flop_counter_macs(model: nn.Module, x: torch.Tensor, fused_attention: bool) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    saved = []
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            saved.append((m, m.fused_attn))
            m.fused_attn = fused_attention
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
        return counter.get_total_flops() / 2
    finally:
        for m, v in saved:
            m.fused_attn = v


def count_complexity(encoder: ImageEncoder) -> dict[str, Any]:
    """Returns a dict of parameter and MAC counts (raw numbers) for one image."""
    encoder.eval()
    size = encoder.img_size
    x = torch.randn(1, 3, size, size)
    out: dict[str, Any] = {
        "input": [1, 3, size, size],
        "params_all": sum(p.numel() for p in encoder.parameters()),
        "params_trainable": sum(p.numel() for p in encoder.parameters() if p.requires_grad),
        "macs_no_attention": _flop_counter_macs(encoder, x, fused_attention=True),
        "macs_with_attention": _flop_counter_macs(encoder, x, fused_attention=False),
    }
    try:
        import thop
    except ImportError:
        out["thop"] = None
    else:
        import copy

        model = copy.deepcopy(encoder)  # thop attaches buffers to every module
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            macs, params = thop.profile(model, inputs=(x,), verbose=False)
        out["thop"] = {"params": float(params), "macs": float(macs)}
    return out
