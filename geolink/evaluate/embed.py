"""Image embedding for evaluation: batched, no_grad, AMP on GPU, cached on disk.

The cache file name is a hash of everything the embeddings depend on: the model (checkpoint
sha256, or a hash of the weights), the image paths with their mtimes and sizes, the input size and
the weather condition. Paths are hashed in sorted order and the array is stored in that order, so
the same images listed in another order hit the same cache entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from geolink.errors import DataError
from geolink.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def model_fingerprint(model: nn.Module) -> str:
    """sha256 over the names, shapes and bytes of a model's state dict (for cache keys when no
    checkpoint hash is known)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(
    model_key: str, paths: Sequence[str | Path], img_size: int, weather: str | None
) -> str:
    """Hex key of (model, sorted paths + mtime + size, img_size, weather)."""
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|{model_key}|{img_size}|{weather}".encode())
    for p in sorted(str(p) for p in paths):
        try:
            st = os.stat(p)
            # os.fsencode: a file name that is not valid UTF-8 keeps its raw bytes
            h.update(b"|" + os.fsencode(p) + f"|{st.st_mtime_ns}|{st.st_size}".encode())
        except OSError:
            h.update(b"|" + os.fsencode(p) + b"|missing")
    return h.hexdigest()[:32]


def _autocast(device: torch.device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def _run_encoder(
    encoder: nn.Module,
    paths: list[Path],
    img_size: int,
    batch_size: int,
    weather: str | None,
    device: torch.device,
    num_workers: int,
    desc: str,
) -> np.ndarray:
    from torch.utils.data import DataLoader

    from geolink.data.torch_datasets import ImageListDataset
    from geolink.data.transforms import eval_transforms

    ds = ImageListDataset(paths, eval_transforms(img_size), weather=weather, img_size=img_size)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    out: np.ndarray | None = None
    encoder.eval()
    with torch.no_grad(), _autocast(device):
        for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
            emb = encoder(batch["image"].to(device, non_blocking=True)).float()
            emb = torch.nn.functional.normalize(emb, dim=1)  # AMP can drift off the unit sphere
            if out is None:
                out = np.empty((len(ds), emb.shape[1]), dtype=np.float32)
            out[batch["index"].numpy()] = emb.cpu().numpy()
    assert out is not None
    bad = np.flatnonzero(~np.isfinite(out).all(1))
    if len(bad):
        names = ", ".join(str(paths[i]) for i in bad[:3])
        raise DataError(f"the encoder produced NaN/inf embeddings for {len(bad)} images: {names}")
    return out


def embed_images(
    encoder: nn.Module,
    paths: Sequence[str | Path],
    img_size: int | None = None,
    batch_size: int = 32,
    weather: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    model_key: str | None = None,
    num_workers: int = 0,
    desc: str = "embed",
) -> np.ndarray:
    """Embed images with ``encoder``; returns (N, D) float32 L2-normalised rows in ``paths`` order.

    ``img_size`` defaults to ``encoder.img_size``; ``weather`` is a condition of
    :mod:`geolink.data.weather` applied to every image (callers pass it for drone images only);
    ``model_key`` (e.g. the checkpoint sha256) names the model in the cache key, else the weights
    are hashed. With ``cache_dir`` the result is read from / written to ``<cache_dir>/<key>.npy``.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError("no images to embed (empty image list)")
    img_size = int(img_size or getattr(encoder, "img_size", 0) or 224)
    dev = torch.device(device) if device is not None else next(encoder.parameters()).device
    encoder.to(dev)
    order = sorted(range(len(paths)), key=lambda i: str(paths[i]))
    sorted_paths = [paths[i] for i in order]
    cache_file = None
    if cache_dir is not None:
        key = cache_key(model_key or model_fingerprint(encoder), paths, img_size, weather)
        cache_file = Path(cache_dir) / f"{key}.npy"
        if cache_file.is_file():
            try:
                cached = np.load(cache_file)
                if cached.shape[0] == len(paths):
                    log.debug("embedding cache hit %s", cache_file)
                    return _unsort(cached, order)
            except (OSError, ValueError) as e:
                log.warning("ignoring unreadable embedding cache %s: %s", cache_file, e)
    emb = _run_encoder(encoder, sorted_paths, img_size, batch_size, weather, dev, num_workers, desc)
    if cache_file is not None:
        with atomic_path(cache_file) as tmp:
            np.save(tmp, emb)
        atomic_write_json(
            cache_file.with_suffix(".json"),
            {
                "n": len(paths),
                "dim": int(emb.shape[1]),
                "img_size": img_size,
                "weather": weather,
                "model_key": model_key,
                "first": str(sorted_paths[0]),
            },
        )
    return _unsort(emb, order)


def _unsort(sorted_emb: np.ndarray, order: list[int]) -> np.ndarray:
    out = np.empty_like(sorted_emb)
    out[np.asarray(order)] = sorted_emb
    return out


def embedding_info(cache_dir: str | Path) -> list[dict]:
    """Metadata of the cache entries in ``cache_dir`` (for inspection)."""
    return [json.loads(p.read_text()) for p in sorted(Path(cache_dir).glob("*.json"))]
