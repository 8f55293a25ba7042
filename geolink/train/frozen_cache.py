"""Frozen-trunk feature cache: run the frozen part of the backbone once per training image.

With ``model.image.frozen_blocks = k`` the stem and the first ``k`` blocks never change during
training, so their output depends on the input image alone. ``train.frozen_cache=true`` computes
it once for every training image *and every geometric variant the training draws* (drone: the
joint horizontal flip; satellite: flip x four 90-degree rotations), stores it in one safetensors
file, and a training step then runs only the trainable top of the backbone, MixVPR and the 3D
branch.

Exactness: a cached step equals the uncached step on ``train.augment=geometric`` input (the same
flip and rotation draws, the same resize and normalisation); tested. Photometric augmentations
(colour jitter, blur, dropout, JPEG) would need one cached copy per draw, so the cache accepts
only ``train.augment=geometric``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from geolink.data.base import Pair
from geolink.data.images import load_image
from geolink.data.torch_datasets import EpochPairs, geometric_draw, geometric_view
from geolink.errors import ConfigError
from geolink.utils.io import atomic_path

logger = logging.getLogger(__name__)

CACHE_FORMAT = "geolink-frozen-cache-v1"
SATELLITE_VARIANTS = 8  # flip (2) x rotation by k * 90 degrees (4): variant = 4 * flip + k
DRONE_VARIANTS = 2  # flip


def _key(encoder: torch.nn.Module, paths: Sequence[Path], img_size: int) -> str:
    """Identity of a cache: the frozen weights, the image files (size, mtime) and the input size."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "img_size": img_size}).encode())
    h.update(str(encoder.backbone.trunk_fingerprint()).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


class FrozenFeatureCache:
    """Trunk activations of every training image: ``drone[(path, flip)]``, ``satellite[...]``."""

    def __init__(self, drone: Tensor, satellite: Tensor, drone_index: dict, satellite_index: dict):
        self.drone = drone  # (Nd, 2, ...)
        self.satellite = satellite  # (Ns, 8, ...)
        self.drone_index = drone_index
        self.satellite_index = satellite_index

    @property
    def nbytes(self) -> int:
        return self.drone.numel() * self.drone.element_size() + (
            self.satellite.numel() * self.satellite.element_size()
        )

    def lookup(
        self, pairs: Sequence[Pair], draws: Sequence[tuple[bool, int]]
    ) -> tuple[Tensor, Tensor]:
        """Trunk activations (B, ...) of the drone and satellite images of ``pairs``."""
        di = torch.tensor([self.drone_index[str(p.drone)] for p in pairs])
        si = torch.tensor([self.satellite_index[str(p.satellite)] for p in pairs])
        flip = torch.tensor([int(f) for f, _ in draws])
        turns = torch.tensor([k for _, k in draws])
        return self.drone[di, flip], self.satellite[si, 4 * flip + turns]

    def embed(self, encoder, paths: Sequence[Path], view: str, batch: int, device) -> np.ndarray:
        """(N, D) L2-normalised embeddings of training images as they are (no flip, no turn)
        from their cached activations: what ``embed_images`` gives for them, without decoding
        an image or running the trunk (the validation split is made of such images)."""
        table, index = (
            (self.drone, self.drone_index)
            if view == "drone"
            else (self.satellite, self.satellite_index)
        )
        from geolink.evaluate.embed import embed_activations

        rows = torch.tensor([index[str(p)] for p in paths], dtype=torch.long)
        was_training = encoder.training
        encoder.eval()
        emb = embed_activations(encoder, table[rows, 0], batch, device)  # variant 0: as is
        encoder.train(was_training)
        return emb


@torch.no_grad()
def _run_trunk(
    encoder, paths: list[Path], variants: list[tuple[bool, int]], size: int, batch: int, device
) -> Tensor:
    from tqdm.auto import tqdm

    out: list[Tensor] = []
    jobs = [(p, v) for p in paths for v in variants]
    bar = tqdm(total=len(jobs), desc="frozen-trunk cache", leave=False, unit="img")
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        images = {p: load_image(p) for p in {p for p, _ in chunk}}
        x = torch.stack([geometric_view(images[p], f, k, size) for p, (f, k) in chunk])
        out.append(encoder.trunk(x.to(device)).float().cpu().contiguous())
        bar.update(len(chunk))
    bar.close()
    acts = torch.cat(out)
    return acts.view(len(paths), len(variants), *acts.shape[1:])


def build_frozen_cache(
    encoder, pairs: Sequence[Pair], img_size: int, path: str | Path, device="cpu", batch: int = 64
) -> FrozenFeatureCache:
    """Load the cache at ``path`` if it matches ``encoder``'s frozen weights and the images,
    else compute it (atomically written; a stale file is replaced)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file, save_file

    bb = encoder.backbone
    if bb.frozen_blocks <= 0:
        raise ConfigError("train.frozen_cache=true needs model.image.frozen_blocks > 0")
    if not bb.trunk_is_frozen:
        raise ConfigError(
            f"train.frozen_cache=true: the trunk of '{bb.name}' still has trainable tensors "
            "(a ViT's positional embedding and class token train in the CV-Cities recipe); "
            "set model.image.freeze_embeddings=true to freeze them"
        )
    path = Path(path)
    drones = sorted({p.drone for p in pairs})
    sats = sorted({p.satellite for p in pairs})
    key = _key(encoder, [*drones, *sats], img_size)
    d_index = {str(p): i for i, p in enumerate(drones)}
    s_index = {str(p): i for i, p in enumerate(sats)}
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            if meta.get("key") == key:
                t = load_file(str(path))
                logger.info("frozen-trunk cache: reusing %s", path)
                return FrozenFeatureCache(t["drone"], t["satellite"], d_index, s_index)
            logger.info(
                "frozen-trunk cache %s was made for other weights or images: rebuilding", path
            )
        except (SafetensorError, OSError) as e:
            logger.warning("frozen-trunk cache %s is unreadable (%s): rebuilding", path, e)
    was_training = encoder.training
    encoder.eval()
    drone_v = [(False, 0), (True, 0)]
    sat_v = [(f, k) for f in (False, True) for k in range(4)]
    d = _run_trunk(encoder, drones, drone_v, img_size, batch, device)
    s = _run_trunk(encoder, sats, sat_v, img_size, batch, device)
    encoder.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"drone": d.contiguous(), "satellite": s.contiguous()}, str(tmp), {"key": key})
    cache = FrozenFeatureCache(d, s, d_index, s_index)
    logger.info(
        "frozen-trunk cache: %d drone + %d satellite images, %.0f MiB -> %s",
        len(drones),
        len(sats),
        cache.nbytes / 2**20,
        path,
    )
    return cache


class CachedPairDataset(EpochPairs):
    """Training items as trunk activations; same draws as ``PairDataset(augment='geometric')``."""

    def __init__(self, pairs: Sequence[Pair], cache: FrozenFeatureCache, seed: int, flip_p: float):
        self.pairs = list(pairs)
        self.cache = cache
        self.seed = seed
        self.flip_p = flip_p
        self.epoch = 0

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        draw = geometric_draw(self.seed, self.epoch, index, self.flip_p)
        drone, satellite = self.cache.lookup([pair], [draw])
        return {
            "drone": drone[0],
            "satellite": satellite[0],
            "label": pair.label,
            "index": index,
            "scene": pair.scene,
        }
