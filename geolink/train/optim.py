"""Optimiser and learning-rate schedule: cosine decay from lr to min_lr after a linear warmup
(the paper: AdamW 6e-4 -> 1e-4, 0.1-epoch warmup), stepped once per batch."""

from __future__ import annotations

import math

import torch
from torch import nn

from geolink.config import TrainConfig
from geolink.errors import ConfigError


def build_optimizer(cfg: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":  # the released code: plain SGD, no momentum, no weight decay
        return torch.optim.SGD(params, lr=cfg.lr)
    raise ConfigError(f"unknown train.optimizer '{cfg.optimizer}' (adamw | sgd)")


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, lr: float, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    floor = min_lr / lr if lr > 0 else 0.0

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
