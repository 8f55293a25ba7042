"""``train(cfg, out_dir)``: one training-step code path for every dataset, preset and device.

Run folder: config.yaml (resolved), git.txt, metrics.jsonl, tb/ (TensorBoard),
checkpoints/{last,best}.safetensors + checkpoints/trainer_state.pt. ``resume=True`` continues
from the last finished epoch and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from geolink.checkpoint import read_extra, save_model
from geolink.config import GeoLinkConfig, to_yaml
from geolink.errors import ConfigError, DataError
from geolink.models.geolink import GeoLink
from geolink.train.distributed import DistInfo, cleanup, gather_with_grad, init_distributed
from geolink.train.optim import build_optimizer, cosine_with_warmup
from geolink.utils.io import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from geolink.train.frozen_cache import FrozenFeatureCache

logger = logging.getLogger(__name__)

SELECT = ("val", "last", "test")


def git_sha() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5
        )
        sha = out.stdout.strip() or "unknown"
        return sha + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name}: this machine has no CUDA device (use auto or cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={name}: MPS is not available here (use auto or cpu)")
    return device


def autocast_for(device: torch.device, amp: bool):
    """bf16 autocast where supported (CUDA with bf16), else full precision."""
    if amp and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


# settings that only change how a run executes, not what it computes: may differ on --resume
RESUME_MAY_CHANGE = frozenset({"data.num_workers", "train.device", "train.log_every"})


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(
            _flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}")
        )
    return out


class PointFeatureLookup:
    """Location -> its cached Point-NN descriptors; a location reconstructed as several groups
    (``geolink reconstruct --groups K``) has several scenes, one of them drawn per sample (keyed,
    reproducible). ``locations`` maps scene key -> location (recorded by the reconstruction);
    a scene missing from it is its own location."""

    def __init__(self, features: dict[str, Tensor], locations: dict[str, str] | None = None):
        locations = locations or {}
        self.groups: dict[str, list[Tensor]] = {}
        for key in sorted(features):
            self.groups.setdefault(locations.get(key, key), []).append(features[key])

    def __contains__(self, scene: str) -> bool:
        return scene in self.groups

    def batch(self, scenes: list[str], draw: list[int]) -> Tensor:
        return torch.stack(
            [self.groups[s][d % len(self.groups[s])] for s, d in zip(scenes, draw, strict=True)]
        )


class Trainer:
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
    def _build_data(self) -> None:
        from geolink.data import build_dataset
        from geolink.data.samplers import DistinctLocationBatchSampler
        from geolink.data.torch_datasets import PairDataset

        c = self.cfg
        if not c.data.root:
            raise ConfigError("data.root is empty: pass data.root=/path/to/dataset")
        self.dataset = build_dataset(c.data.dataset, c.data.root, **dict(c.data.options))
        pairs = self._subset(self.dataset.train_pairs())
        self.points: PointFeatureLookup | None = None
        if c.model.point.enabled:
            pairs = self._attach_points(pairs)
        if c.train.select not in SELECT:
            raise ConfigError(f"train.select='{c.train.select}' is not one of {', '.join(SELECT)}")
        # the frozen-trunk cache covers the locations before the seeded hold-out, so runs whose
        # validation split differs (other seeds) share one cache file
        self.cache_pairs = pairs
        self.val_set, pairs = self._split_validation(pairs)
        self.pairs = pairs
        img = c.model.image.img_size
        if c.train.frozen_cache and c.train.augment != "geometric":
            raise ConfigError(
                "train.frozen_cache=true reproduces only geometric augmentation: set "
                "train.augment=geometric (or train.frozen_cache=false)"
            )
        self.train_set = PairDataset(
            pairs,
            img_size=img,
            seed=c.train.seed,
            skip_corrupt=c.train.skip_corrupt,
            augment=c.train.augment,
            sepia_solarize=self.dataset.sepia_solarize,
        )
        self.sampler = DistinctLocationBatchSampler(
            self.train_set.labels,
            c.train.batch_size,
            seed=c.train.seed,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
        )
        self.steps_per_epoch = len(self.sampler.plan(0))
        if c.train.max_steps_per_epoch > 0:
            self.steps_per_epoch = min(self.steps_per_epoch, c.train.max_steps_per_epoch)
        if self.steps_per_epoch == 0:
            raise DataError("the training split yields no full batch; lower train.batch_size")

    def _subset(self, pairs: list) -> list:
        """``data.train_locations`` of the training locations (seeded), for learning curves."""
        n = self.cfg.data.train_locations
        locations = sorted({p.location for p in pairs})
        if n < 0:
            raise ConfigError(f"data.train_locations={n} must be >= 0 (0 = all)")
        if n == 0 or n >= len(locations):
            return pairs
        rng = np.random.default_rng([self.cfg.train.seed, 0x5B5E7])
        keep = {locations[i] for i in rng.choice(len(locations), n, replace=False)}
        logger.info("training on %d of %d locations (data.train_locations)", n, len(locations))
        return [p for p in pairs if p.location in keep]

    def _split_validation(self, pairs: list) -> tuple[Any, list]:
        """Hold out ``val_fraction`` of the training locations (seeded) for model selection.
        Returns (RetrievalSet drone->satellite over them or None, the remaining pairs)."""
        from geolink.data.base import RetrievalSet

        c = self.cfg.train
        if c.select != "val" or c.eval_every <= 0 or c.val_fraction <= 0:
            return None, pairs
        if not 0 < c.val_fraction < 1:
            raise ConfigError(f"train.val_fraction={c.val_fraction} must be in [0, 1)")
        locations = sorted({p.location for p in pairs})
        n_val = max(2, round(c.val_fraction * len(locations)))
        if len(locations) - n_val < c.batch_size:
            logger.warning(
                "%d training locations are too few to hold out %d for validation and still fill "
                "a batch of %d: no validation split, best.safetensors = the last epoch",
                len(locations),
                n_val,
                c.batch_size,
            )
            return None, pairs
        rng = np.random.default_rng([c.seed, 0x5E1EC7])
        held = {locations[i] for i in rng.choice(len(locations), n_val, replace=False)}
        val = [p for p in pairs if p.location in held]
        satellites = {p.location: p.satellite for p in val}
        names = sorted(satellites)
        val_set = RetrievalSet(
            "validation",
            queries=[p.drone for p in val],
            query_labels=[p.location for p in val],
            gallery=[satellites[n] for n in names],
            gallery_labels=names,
            query_view="drone",
            gallery_view="satellite",
        )
        logger.info("validation: %d of %d training locations held out", n_val, len(locations))
        return val_set, [p for p in pairs if p.location not in held]

    @property
    def selecting(self) -> bool:
        """True when best.safetensors is chosen by a validation metric."""
        c = self.cfg.train
        if c.eval_every <= 0 or c.select == "last":
            return False
        return c.select == "test" or self.val_set is not None

    def _attach_points(self, pairs: list) -> list:
        from geolink.recon.features import features_for_training, settings_of

        if not self.cfg.data.points:
            raise ConfigError(
                "the 3D branch needs cached point features: pass data.points=RECON_DIR (the "
                "output of `geolink reconstruct`), or model.point.enabled=false for the 2D baseline"
            )
        p = self.cfg.model.point
        # the features of this config's Point-NN settings (computed into the folder if missing)
        feats, locations = features_for_training(self.cfg.data.points, settings_of(p), p.num_points)
        self.points = PointFeatureLookup(feats, locations)
        kept = [p for p in pairs if p.scene in self.points]
        dropped = len({p.scene for p in pairs} - {p.scene for p in kept})
        if not kept:
            raise DataError(
                f"none of the {len(pairs)} training pairs has a point cloud in {self.cfg.data.points}"
                " (scene keys do not match the dataset's locations)"
            )
        if dropped:
            logger.warning("%d training locations have no point cloud and are skipped", dropped)
        return kept

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
    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best": self.best,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "club_optimizer": self.club_optimizer.state_dict() if self.club_optimizer else None,
            "sampler": self.sampler.state_dict(consumed=0),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def _save(self, metric: float | None) -> None:
        if not self.dist.is_main:
            return
        extra = {"epoch": self.epoch, "global_step": self.global_step, "metric": metric}
        yaml = to_yaml(self.cfg)
        save_model(self.model, self.ckpt_dir / "last.safetensors", yaml, extra)
        if not self.selecting:  # no selection: best is the last epoch, and says so
            extra["selection"] = "last"
            save_model(self.model, self.ckpt_dir / "best.safetensors", yaml, extra)
        elif metric is not None and (self.best is None or metric >= self.best):
            # an epoch without validation never replaces best (its weights are unvalidated)
            self.best = metric
            extra["selection"] = self.cfg.train.select
            save_model(self.model, self.ckpt_dir / "best.safetensors", yaml, extra)
        with atomic_path(self.ckpt_dir / "trainer_state.pt") as tmp:
            torch.save(self._state(), tmp)

    def _load_state(self) -> None:
        from safetensors.torch import load_file

        state_path = self.ckpt_dir / "trainer_state.pt"
        weights = self.ckpt_dir / "last.safetensors"
        if not state_path.is_file() or not weights.is_file():
            logger.info("nothing to resume in %s: starting from scratch", self.ckpt_dir)
            self._truncate_metrics()  # lines of an attempt killed before its first checkpoint
            return
        self._check_resume_config()
        st = torch.load(state_path, map_location=self.device, weights_only=True)
        saved = read_extra(weights)
        if (saved.get("epoch"), saved.get("global_step")) != (st["epoch"], st["global_step"]):
            raise DataError(
                f"{weights} is from epoch {saved.get('epoch')} (step {saved.get('global_step')}) "
                f"but {state_path} from epoch {st['epoch']} (step {st['global_step']}): the run "
                "was interrupted between the two writes. Resuming would mix them; retrain into "
                "a new folder, or delete both files to restart this one"
            )
        self.model.load_state_dict(load_file(str(weights), device=str(self.device)))
        self.optimizer.load_state_dict(st["optimizer"])
        self.scheduler.load_state_dict(st["scheduler"])
        if self.club_optimizer and st["club_optimizer"]:
            self.club_optimizer.load_state_dict(st["club_optimizer"])
        self.sampler.load_state_dict(st["sampler"])
        torch.set_rng_state(st["torch_rng"].cpu())
        if st["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in st["cuda_rng"]])
        self.epoch, self.global_step, self.best = st["epoch"], st["global_step"], st["best"]
        self._truncate_metrics()
        logger.info("resumed from %s at epoch %d", self.ckpt_dir, self.epoch)

    def _check_resume_config(self) -> None:
        """Refuse to resume with settings other than the run's own (they would be written to
        config.yaml but not used: the optimiser, schedule and sampler come from the state)."""
        from omegaconf import OmegaConf

        path = self.out / "config.yaml"
        if not path.is_file():
            return
        old = _flatten(OmegaConf.to_container(OmegaConf.create(path.read_text())))
        new = _flatten(OmegaConf.to_container(OmegaConf.create(to_yaml(self.cfg))))
        diff = sorted(
            k for k in old.keys() | new.keys() if old.get(k) != new.get(k)
            and k not in RESUME_MAY_CHANGE
        )  # fmt: skip
        if diff:
            raise ConfigError(
                f"--resume with settings that differ from the run's {path}: "
                + ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:8])
                + (f" (+{len(diff) - 8} more)" if len(diff) > 8 else "")
                + f"; resume with the run's own settings (--config {path}) or train into a new "
                "folder"
            )

    def _truncate_metrics(self) -> None:
        """Drop metric lines logged after the checkpoint we resume from (an interrupted epoch)."""
        path = self.out / "metrics.jsonl"
        if not path.is_file() or not self.dist.is_main:
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line cut by the interruption
            done = r.get("epoch", 0) < self.epoch if r.get("kind") == "train" else True
            if done and (r.get("kind") != "epoch" or r.get("epoch", 0) <= self.epoch):
                keep.append(line)
        atomic_write_text(path, "".join(k + "\n" for k in keep))

    # ---- the one training step ----------------------------------------------------------
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
