"""Multi-GPU / multi-process training through ``torchrun``: process-group setup and an
autograd-aware all-gather so InfoNCE negatives span the global batch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def gather_with_grad(x: Tensor) -> Tensor:
    """(B, D) per rank -> (world·B, D), rank-major; gradients flow back to every rank's rows."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # no rank tears gloo/NCCL down while a peer still communicates
        dist.destroy_process_group()
