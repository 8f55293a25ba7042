"""The trainer's run state: checkpoints, ``trainer_state.pt``, resuming (with the same
config only) and the metrics log cut back to the resumed epoch."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import torch

from geolink.checkpoint import read_extra, save_model
from geolink.config import to_yaml
from geolink.errors import ConfigError, DataError
from geolink.utils.io import atomic_path, atomic_write_text

if TYPE_CHECKING:
    pass

from geolink.train.runtime import RESUME_MAY_CHANGE
from geolink.utils import conf

logger = logging.getLogger(__name__)


class RunState:
    """Saving and resuming for :class:`~geolink.train.trainer.Trainer`."""

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
        old = OmegaConf.to_container(OmegaConf.create(path.read_text()))
        diff = conf.differences(old, conf.to_dict(self.cfg), ignore=RESUME_MAY_CHANGE)
        if diff:
            raise ConfigError(
                f"--resume with settings that differ from the run's {path}: "
                + ", ".join(diff[:8])
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
