"""Content hashes of tensors (cache keys that change exactly when the weights do)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch


def tensors_digest(named: Iterable[tuple[str, torch.Tensor]], prefix: str = "") -> str:
    """sha256 over ``prefix`` and each tensor's name, shape, dtype and raw bytes, in order."""
    h = hashlib.sha256(prefix.encode())
    for name, t in named:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        # reshape first: a 0-d tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
