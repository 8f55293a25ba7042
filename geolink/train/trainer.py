"""``train(cfg, out_dir)``: one training-step code path for every dataset, preset and device.

Run folder: config.yaml (resolved), git.txt, metrics.jsonl, tb/ (TensorBoard),
checkpoints/{last,best}.safetensors + checkpoints/trainer_state.pt. ``resume=True`` continues
from the last finished epoch and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from geolink.config import GeoLinkConfig, to_yaml
from geolink.errors import ConfigError
from geolink.models.geolink import GeoLink
from geolink.train.checkpointing import RunState
from geolink.train.distributed import DistInfo, cleanup, gather_with_grad, init_distributed
from geolink.train.optim import build_optimizer, cosine_with_warmup
from geolink.train.runtime import (  # re-exported: benchmarks and the demo use them
    PointFeatureLookup,
    autocast_for,
    git_sha,
    resolve_device,
    seed_everything,
)
from geolink.train.training_data import TrainingData
from geolink.utils.io import atomic_write_text

if TYPE_CHECKING:
    from geolink.train.frozen_cache import FrozenFeatureCache

logger = logging.getLogger(__name__)


class Trainer(TrainingData, RunState):
    def __init__(self, cfg: GeoLinkConfig, out_dir: str | Path, resume: bool = False):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.resume = resume
        self.device = resolve_device(cfg.train.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        seed_everything(cfg.train.seed)
        self._build_data()
        self._build_model()
        self.frozen: FrozenFeatureCache | None = None  # set by _build_frozen_cache
        if cfg.train.frozen_cache:
            self._build_frozen_cache()
        self.epoch = 0
        self.global_step = 0
        self.best: float | None = None
        self.ckpt_dir = self.out / "checkpoints"
        if resume:
            self._load_state()
        else:
            self._truncate_metrics()  # a fresh run: no lines of an earlier attempt survive

    @classmethod
    def without_data(
        cls,
        cfg: GeoLinkConfig,
        point_features: dict[str, Tensor] | None = None,
        steps_per_epoch: int = 1000,
    ) -> Trainer:
        """A trainer whose :meth:`step` runs on batches the caller makes (benchmarks, the GPU
        check): the model, optimisers and schedule of ``cfg`` on ``cfg.train.device``, no
        dataset and no output folder. Batches are ``{"drone", "satellite", "index", "scene"}``;
        ``scene`` names keys of ``point_features`` (needed when the 3D branch is on)."""
        self = cls.__new__(cls)
        self.cfg, self.out, self.resume = cfg, None, False
        self.device = resolve_device(cfg.train.device)
        self.dist = DistInfo()
        seed_everything(cfg.train.seed)
        self.points = PointFeatureLookup(point_features) if point_features is not None else None
        if cfg.model.point.enabled and self.points is None:
            raise ConfigError(
                "the 3D branch is on: pass point_features (or model.point.enabled=false)"
            )
        self.steps_per_epoch = steps_per_epoch
        self._build_model()
        self.frozen = None
        self.epoch = self.global_step = 0
        return self

    @property
    def cached(self) -> bool:
        """Training steps read the frozen trunk's activations from the cache."""
        return self.frozen is not None

    # ---- setup -------------------------------------------------------------------------
    def _build_model(self) -> None:
        c = self.cfg
        model = GeoLink(c.model, c.loss).to(self.device)
        self.model = model
        club = set(map(id, model.criterion.club_parameters()))
        params = [p for p in model.parameters() if p.requires_grad and id(p) not in club]
        self.optimizer = build_optimizer(c.train, params)
        total = c.train.epochs * self.steps_per_epoch
        warmup = int(round(c.train.warmup_epochs * self.steps_per_epoch))
        self.scheduler = cosine_with_warmup(
            self.optimizer, total, warmup, c.train.lr, c.train.min_lr
        )
        self.club_optimizer = None
        if c.loss.club_train and model.criterion.club_parameters():
            self.club_optimizer = torch.optim.Adam(
                model.criterion.club_parameters(), lr=c.loss.club_lr
            )
        self.ddp: nn.Module = model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def _build_frozen_cache(self) -> None:
        from geolink.train.frozen_cache import CachedPairDataset, build_frozen_cache

        c = self.cfg
        folder = (
            Path(c.train.frozen_cache_dir)
            if c.train.frozen_cache_dir
            else self.out / "frozen_cache"
        )
        path = folder / f"{c.model.image.backbone}_{c.model.image.img_size}px.safetensors"
        encoder = self.model.image_encoder
        if self.dist.enabled and not self.dist.is_main:
            torch.distributed.barrier()  # rank 0 builds; the others then read its file
        cache = build_frozen_cache(
            encoder, self.cache_pairs, c.model.image.img_size, path, self.device
        )
        if self.dist.enabled and self.dist.is_main:
            torch.distributed.barrier()
        self.train_set = CachedPairDataset(
            self.pairs, cache, seed=c.train.seed, flip_p=self.train_set.flip_p
        )
        self.frozen = cache

    # ---- state -------------------------------------------------------------------------
    def step(self, batch: dict[str, Any]) -> dict[str, float]:
        c = self.cfg
        drone = batch["drone"].to(self.device, non_blocking=True)
        satellite = batch["satellite"].to(self.device, non_blocking=True)
        pf = None
        if self.points is not None:
            draw = [int(i) + 7919 * self.epoch for i in batch["index"]]
            pf = self.points.batch(list(batch["scene"]), draw).to(self.device)
        self.ddp.train()
        gather = gather_with_grad if self.dist.enabled else None
        with autocast_for(self.device, c.train.amp):
            out = self.ddp(
                drone, satellite, point_features=pf, gather=gather, from_trunk=self.cached
            )
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        if c.train.grad_clip > 0:
            nn.utils.clip_grad_value_(self.model.parameters(), c.train.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if self.club_optimizer is not None and "point_emb" in out:
            self._club_steps(out)
        return {k: float(v.detach()) for k, v in out.items() if v.dim() == 0}

    def _club_steps(self, out: dict[str, Tensor]) -> None:
        crit = self.model.criterion
        for _ in range(self.cfg.loss.club_steps):
            self.club_optimizer.zero_grad(set_to_none=True)
            nll = crit.club_learning_loss(out["drone_emb"], out["satellite_emb"], out["point_emb"])
            nll.float().backward()
            if self.dist.enabled:
                # outside DDP: average the estimator's gradients by hand so that every rank
                # takes the same step on the global batch and keeps the same estimator
                grads = [p.grad for p in crit.club_parameters() if p.grad is not None]
                for g in grads:
                    torch.distributed.all_reduce(g)
                    g.div_(self.dist.world_size)
            self.club_optimizer.step()

    # ---- loop ---------------------------------------------------------------------------
    def fit(self, stop_after_epoch: int | None = None) -> Path:
        c = self.cfg
        self._write_run_info()
        writer = self._tensorboard()
        loader = DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            # cached activations are tensor lookups: worker processes would only copy them
            num_workers=0 if self.cached else c.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        while self.epoch < c.train.epochs:
            self.sampler.set_epoch(self.epoch)
            self.train_set.set_epoch(self.epoch)
            t0 = time.perf_counter()
            self._run_epoch(loader, writer)
            self.epoch += 1
            metric = self._validate() if self._should_validate() else None
            self._save(metric)
            record = {"kind": "epoch", "epoch": self.epoch, "seconds": time.perf_counter() - t0}
            if metric is not None:
                record["val_R@1"] = metric
            self._log(record, writer)
            if stop_after_epoch is not None and self.epoch >= stop_after_epoch:
                break
        if writer is not None:
            writer.close()
        cleanup()
        return self.out

    def _run_epoch(self, loader: DataLoader, writer: Any) -> None:
        c = self.cfg
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {self.epoch + 1}/{c.train.epochs}",
            disable=not self.dist.is_main,
            leave=False,
        )
        t_last, n_img = time.perf_counter(), 0
        for i, batch in enumerate(loader):
            if i >= self.steps_per_epoch:
                break
            terms = self.step(batch)
            self.global_step += 1
            n_img += 2 * len(batch["label"]) * self.dist.world_size
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.3f}")
            if self.global_step % c.train.log_every == 0 or i == self.steps_per_epoch - 1:
                now = time.perf_counter()
                terms.update(
                    kind="train",
                    epoch=self.epoch,
                    step=self.global_step,
                    lr=self.scheduler.get_last_lr()[0],
                    logit_scale=float(self.model.logit_scale.detach()),
                    img_per_s=n_img / max(now - t_last, 1e-9),
                )
                t_last, n_img = now, 0
                self._log(terms, writer)
        bar.close()

    def _should_validate(self) -> bool:
        every = self.cfg.train.eval_every
        return every > 0 and (self.epoch % every == 0 or self.epoch == self.cfg.train.epochs)

    def _validate(self) -> float | None:
        """drone->satellite R@1 on the validation split (``select=val``) or on the training
        dataset's own test split (``select=test``); None when nothing selects."""
        from geolink.evaluate.embed import embed_images
        from geolink.evaluate.metrics import retrieval_metrics

        if not self.selecting or not self.dist.is_main:
            return None
        if self.val_set is not None:
            s = self.val_set
        else:
            sets = [s for s in self.dataset.eval_sets("drone2satellite") if s.queries]
            if not sets:
                return None
            s = sets[0]
        q_idx = np.arange(len(s.queries))
        if 0 < self.cfg.train.eval_max_queries < len(q_idx):
            q_idx = np.linspace(0, len(q_idx) - 1, self.cfg.train.eval_max_queries).astype(int)
        enc = self.model.image_encoder
        img, bs = self.cfg.model.image.img_size, max(2 * self.cfg.train.batch_size, 8)
        queries = [s.queries[i] for i in q_idx]
        if self.cached and self.val_set is not None:  # held-out training images: cached trunk
            assert self.frozen is not None
            q = self.frozen.embed(enc, queries, s.query_view, bs, self.device)
            g = self.frozen.embed(enc, s.gallery, s.gallery_view, bs, self.device)
        else:
            q = embed_images(enc, queries, img, bs, device=self.device)
            g = embed_images(enc, s.gallery, img, bs, device=self.device)
        m = retrieval_metrics(q, g, [s.query_labels[i] for i in q_idx], s.gallery_labels)
        return float(m["R@1"])

    def _write_run_info(self) -> None:
        if not self.dist.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.yaml", to_yaml(self.cfg))
        atomic_write_text(self.out / "git.txt", git_sha() + "\n")

    def _tensorboard(self) -> Any:
        if not self.dist.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning("tensorboard is not installed: no TensorBoard events")
            return None
        return SummaryWriter(str(self.out / "tb"))

    def _log(self, record: dict[str, Any], writer: Any) -> None:
        if not self.dist.is_main:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if writer is not None:
            step = record.get("step", self.global_step)
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    writer.add_scalar(f"{record['kind']}/{k}", v, step)


def train(
    cfg: GeoLinkConfig,
    out_dir: str | Path,
    resume: bool = False,
    stop_after_epoch: int | None = None,
) -> Path:
    """Train a GeoLink (or, with ``model.point.enabled=false``, the 2D baseline) run.

    Returns the run folder. ``stop_after_epoch`` ends the run early after that many epochs
    (used to test that resuming reproduces an uninterrupted run).
    """
    return Trainer(cfg, out_dir, resume=resume).fit(stop_after_epoch=stop_after_epoch)


__all__ = [
    "PointFeatureLookup",
    "Trainer",
    "autocast_for",
    "git_sha",
    "resolve_device",
    "seed_everything",
    "train",
]
