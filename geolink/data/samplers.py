"""Batches of distinct locations (no false negatives for InfoNCE), seeded and resumable.

The epoch plan follows Sample4Geo's custom shuffle: shuffle all pairs, then fill each batch
with pairs whose location is not in it yet; a pair that collides is deferred to the next batch.
Every pair is used at most once per epoch. Leftovers that cannot fill a batch of distinct
locations are dropped (``drop_last=True``) or yielded as smaller batches.

The plan depends only on ``(seed, epoch)``. For distributed training each global batch holds
``batch_size * num_replicas`` distinct locations and rank ``r`` gets slice ``r``, so the
all-gathered batch has no false negatives either.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from geolink.errors import ConfigError


class DistinctLocationBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices whose ``labels`` are pairwise distinct.

    Call :meth:`set_epoch` before each epoch. :meth:`state_dict` / :meth:`load_state_dict`
    resume mid-epoch: the next iteration skips the batches already consumed.
    """

    def __init__(
        self,
        labels: Sequence[Hashable],
        batch_size: int,
        seed: int = 0,
        drop_last: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} out of range for {num_replicas} replicas")
        if num_replicas > 1 and not drop_last:
            # a partial last batch would give ranks different step counts (DDP would hang)
            raise ConfigError("distributed sampling needs drop_last=True")
        self.labels = list(labels)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        n_labels = len(set(self.labels))
        if drop_last and n_labels < self.global_batch:
            raise ConfigError(
                f"batch of {self.global_batch} distinct locations requested but the dataset has "
                f"only {n_labels}; lower batch_size"
            )
        self.epoch = 0
        self.start_batch = 0  # batches of the current epoch already consumed (resume)
        self.yielded = 0
        self._plan_cache: tuple[int, list[list[int]]] | None = None

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.start_batch = 0
        self.epoch = int(epoch)

    def plan(self, epoch: int | None = None) -> list[list[int]]:
        """All global batches of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if self._plan_cache is None or self._plan_cache[0] != epoch:
            self._plan_cache = (epoch, self._make_plan(epoch))
        return self._plan_cache[1]

    def _make_plan(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        pool = deque(rng.permutation(len(self.labels)).tolist())
        size = self.global_batch
        batches: list[list[int]] = []
        while pool:
            batch, seen, deferred = [], set(), []
            while pool and len(batch) < size:
                i = pool.popleft()
                if self.labels[i] in seen:
                    deferred.append(i)
                else:
                    batch.append(i)
                    seen.add(self.labels[i])
            pool.extendleft(reversed(deferred))  # collisions go first into the next batch
            if len(batch) == size or not self.drop_last:
                batches.append(batch)
            else:
                break  # too few distinct locations left for a full batch
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        plan = self.plan()
        start = self.start_batch
        self.yielded = start
        for batch in plan[start:]:
            self.yielded += 1
            if self.num_replicas == 1:
                yield batch
            else:
                part = batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
                if part:
                    yield part
        self.start_batch = 0

    def __len__(self) -> int:
        return max(0, len(self.plan()) - self.start_batch)

    def state_dict(self, consumed: int | None = None) -> dict:
        """``consumed``: batches of this epoch the trainer finished (default: batches yielded so
        far; with DataLoader prefetching pass the trainer's own count)."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "start_batch": self.yielded if consumed is None else int(consumed),
            "batch_size": self.batch_size,
            "num_replicas": self.num_replicas,
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("batch_size", "num_replicas"):
            if key in state and state[key] != getattr(self, key):
                raise ConfigError(
                    f"sampler state has {key}={state[key]} but this run uses {getattr(self, key)}"
                )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.start_batch = int(state["start_batch"])
        self._plan_cache = None
