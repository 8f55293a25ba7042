"""The trainer's runtime helpers: seeding, devices, autocast, the git SHA, and the lookup of
cached Point-NN features by scene."""

from __future__ import annotations

import logging
import random
import subprocess
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from geolink.errors import ConfigError

if TYPE_CHECKING:
    pass


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
