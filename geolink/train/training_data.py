"""The trainer's data: the training pairs, the validation split held out from the training
locations, and the point features attached to each pair."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from geolink.errors import ConfigError, DataError

if TYPE_CHECKING:
    pass

from geolink.train.runtime import SELECT, PointFeatureLookup

logger = logging.getLogger(__name__)


class TrainingData:
    """Builds ``self.train_set`` / ``self.val_set`` for :class:`~geolink.train.trainer.Trainer`
    (which provides ``cfg``, ``dist`` and the run folder)."""

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
