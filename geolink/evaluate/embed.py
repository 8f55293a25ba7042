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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from geolink.errors import DataError
from geolink.utils.digest import tensors_digest
from geolink.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def model_fingerprint(model: nn.Module) -> str:
    """sha256 over the names, shapes and bytes of a model's state dict (for cache keys when no
    checkpoint hash is known)."""
    return tensors_digest(model.state_dict().items())


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


@dataclass(frozen=True)
class _Pass:
    """One pass over an image list: what every embedding or trunk run is made of."""

    paths: list[Path]
    img_size: int
    batch_size: int
    weather: str | None
    device: torch.device
    num_workers: int
    desc: str


def _map_images(fn, run: _Pass, desc: str | None = None) -> np.ndarray:
    """``fn`` over the preprocessed images in batches -> (N, ...) float32, in ``paths`` order."""
    from torch.utils.data import DataLoader

    from geolink.data.torch_datasets import ImageListDataset
    from geolink.data.transforms import eval_transforms

    ds = ImageListDataset(
        run.paths, eval_transforms(run.img_size), weather=run.weather, img_size=run.img_size
    )
    loader = DataLoader(
        ds,
        batch_size=run.batch_size,
        shuffle=False,
        num_workers=run.num_workers,
        pin_memory=run.device.type == "cuda",
    )
    out: np.ndarray | None = None
    with torch.no_grad(), _autocast(run.device):
        for batch in tqdm(loader, desc=desc or run.desc, unit="batch", leave=False):
            y = fn(batch["image"].to(run.device, non_blocking=True)).float().cpu().contiguous()
            if out is None:
                out = np.empty((len(ds), *y.shape[1:]), dtype=np.float32)
            out[batch["index"].numpy()] = y.numpy()
    assert out is not None
    return out


def _normalised(emb: Tensor) -> Tensor:
    return torch.nn.functional.normalize(emb.float(), dim=1)  # AMP can drift off the unit sphere


def _check_finite(out: np.ndarray, paths: list[Path]) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(out).all(1))
    if len(bad):
        names = ", ".join(str(paths[i]) for i in bad[:3])
        raise DataError(f"the encoder produced NaN/inf embeddings for {len(bad)} images: {names}")
    return out


def _run_encoder(encoder: nn.Module, run: _Pass) -> np.ndarray:
    encoder.eval()
    return _check_finite(_map_images(lambda x: _normalised(encoder(x)), run), run.paths)


def _trunk_fingerprint(encoder: nn.Module) -> str | None:
    backbone = getattr(encoder, "backbone", None)
    if backbone is None or not hasattr(encoder, "from_trunk"):
        return None
    return backbone.trunk_fingerprint()


def _run_from_trunk(
    encoder: nn.Module, fingerprint: str, trunk_dir: Path, run: _Pass
) -> np.ndarray:
    """Like :func:`_run_encoder`, with the frozen trunk's activations read from (or written to)
    ``trunk_dir``: models that share a frozen trunk (the demo's untrained, baseline and GeoLink
    encoders) run it once per image set and condition. Same batches, same result."""
    encoder.eval()
    key = cache_key(fingerprint, run.paths, run.img_size, run.weather)
    file = trunk_dir / f"trunk_{key}.npy"
    acts = _load_cached(file, len(run.paths))
    if acts is None:
        acts = _map_images(encoder.trunk, run, f"{run.desc} (trunk)")
        trunk_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(file) as tmp:
            np.save(tmp, acts)
    emb = embed_activations(encoder, torch.from_numpy(acts), run.batch_size, run.device)
    return _check_finite(emb, run.paths)


def embed_activations(
    encoder: nn.Module, acts: Tensor, batch_size: int, device: str | torch.device
) -> np.ndarray:
    """(N, D) L2-normalised embeddings from frozen-trunk activations (N, ...): the encoder's top
    in batches, with the same autocast as :func:`embed_images`."""
    device = torch.device(device)
    out: list[np.ndarray] = []
    with torch.no_grad(), _autocast(device):
        for i in range(0, len(acts), batch_size):
            x = acts[i : i + batch_size].to(device)
            out.append(_normalised(encoder.from_trunk(x)).cpu().numpy())
    return np.concatenate(out)


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
    trunk_cache_dir: str | Path | None = None,
) -> np.ndarray:
    """Embed images with ``encoder``; returns (N, D) float32 L2-normalised rows in ``paths`` order.

    ``img_size`` defaults to ``encoder.img_size``; ``weather`` is a condition of
    :mod:`geolink.data.weather` applied to every image (callers pass it for drone images only);
    ``model_key`` (e.g. the checkpoint sha256) names the model in the cache key, else the weights
    are hashed. With ``cache_dir`` the result is read from / written to ``<cache_dir>/<key>.npy``.
    With ``trunk_cache_dir`` and an encoder whose backbone trunk is frozen, the trunk's
    activations are cached there too, keyed by the trunk's weights, so other models with the same
    frozen trunk skip it (float32 activations: about 45 KB an image for EfficientNet-Lite0 at
    160 px, 3 MB for a ViT-B at 448 px; meant for benchmark-sized sets).
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
        if (cached := _load_cached(cache_file, len(paths))) is not None:
            return _unsort(cached, order)
    run = _Pass(sorted_paths, img_size, batch_size, weather, dev, num_workers, desc)
    fingerprint = _trunk_fingerprint(encoder) if trunk_cache_dir is not None else None
    if fingerprint is not None:
        emb = _run_from_trunk(encoder, fingerprint, Path(trunk_cache_dir), run)
    else:
        emb = _run_encoder(encoder, run)
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


def _load_cached(file: Path, n: int) -> np.ndarray | None:
    """The cached array of ``n`` rows in ``file``, or None (absent, unreadable, other length)."""
    if not file.is_file():
        return None
    try:
        arr = np.load(file)
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable cache %s: %s", file, e)
        return None
    if arr.shape[0] != n:
        return None
    log.debug("cache hit %s", file)
    return arr


def _unsort(sorted_emb: np.ndarray, order: list[int]) -> np.ndarray:
    out = np.empty_like(sorted_emb)
    out[np.asarray(order)] = sorted_emb
    return out


def embedding_info(cache_dir: str | Path) -> list[dict]:
    """Metadata of the cache entries in ``cache_dir`` (for inspection)."""
    return [json.loads(p.read_text()) for p in sorted(Path(cache_dir).glob("*.json"))]
