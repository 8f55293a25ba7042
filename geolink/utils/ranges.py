"""Ranges of the config options, checked when a config is built or read from a checkpoint.

No torch imports: the deployment path validates a checkpoint's recorded image config with it.
"""

from __future__ import annotations

from typing import Any

from geolink.registries import POINT_ENCODERS, POINT_HEADS


def _int_in(lo: int, hi: float = float("inf")):
    return (lambda v: isinstance(v, int) and lo <= v <= hi), (
        f"an integer >= {lo}" if hi == float("inf") else f"an integer in {lo}..{int(hi)}"
    )


def _num_in(lo: float, hi: float = float("inf"), open_hi: bool = False):
    import math

    def ok(v) -> bool:
        return (
            isinstance(v, (int, float))
            and math.isfinite(v)
            and lo <= v
            and (v < hi if open_hi else v <= hi)
        )

    top = "" if hi == float("inf") else (f" and < {hi:g}" if open_hi else f" and <= {hi:g}")
    return ok, f"a finite number >= {lo:g}{top}"


def _one_of(*names: str):
    return (lambda v: v in names), "one of " + ", ".join(names)


# Ranges of the options (checked when a config is built, so a bad value fails at load with
# the key and what was expected, not as a traceback or a silent no-op mid-training).
RULES: dict[str, tuple[Any, str]] = {
    "model.image.img_size": _int_in(14, 4096),
    "model.image.frozen_blocks": _int_in(0),
    "model.image.mix_out_channels": _int_in(1),
    "model.image.mix_out_rows": _int_in(1),
    "model.image.mix_depth": _int_in(1),
    "model.image.mix_mlp_ratio": _num_in(1e-6),
    "model.point.num_points": _int_in(16, 1_000_000),
    "model.point.stages": _int_in(1, 8),
    "model.point.embed_dim": _int_in(1),
    "model.point.k": _int_in(1),
    "model.point.alpha": _num_in(1e-9),
    "model.point.beta": _num_in(1e-9),
    "model.point.lga_std": _one_of("cloud", "batch"),
    "model.point.encoder": _one_of(*POINT_ENCODERS.names()),
    "model.point.head": _one_of(*POINT_HEADS.names()),
    "model.point.input_norm": _one_of("none", "batch"),
    "model.point.experts": _int_in(1),
    "model.point.expert_channels": _int_in(1),
    "loss.label_smoothing": _num_in(0, 1, open_hi=True),
    "loss.infonce_form": _one_of("symmetric", "legacy"),
    "loss.lambda_sc": _num_in(0),
    "loss.rd_normalization": _one_of("mean", "sum"),
    "loss.rd_weight": _num_in(0),
    "loss.ga_weight": _num_in(0),
    "loss.club_hidden": _int_in(2),
    "loss.club_steps": _int_in(0),
    "loss.club_lr": _num_in(1e-12),
    "data.num_workers": _int_in(0),
    "data.train_locations": _int_in(0),
    "train.epochs": _int_in(1),
    "train.batch_size": _int_in(2),  # InfoNCE needs at least one negative
    "train.optimizer": _one_of("adamw", "sgd"),
    "train.lr": _num_in(1e-12),
    "train.min_lr": _num_in(0),
    "train.weight_decay": _num_in(0),
    "train.warmup_epochs": _num_in(0),
    "train.grad_clip": _num_in(0),  # 0 = no clipping
    "train.seed": _int_in(0, 2**32 - 1),
    "train.log_every": _int_in(1),
    "train.max_steps_per_epoch": _int_in(0),
    "train.eval_every": _int_in(0),
    "train.select": _one_of("val", "last", "test"),
    "train.val_fraction": _num_in(0, 1, open_hi=True),
    "train.eval_max_queries": _int_in(0),
    "train.augment": _one_of("full", "geometric"),
}


def out_of_range(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """``"key=value (expected ...)"`` for every option of ``tree`` (nested dicts, keys as in
    :data:`RULES` below ``prefix``) whose value breaks its rule."""
    bad = []
    for key, (ok, expected) in RULES.items():
        if not key.startswith(prefix):
            continue
        value: Any = tree
        for part in key[len(prefix) :].split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            if isinstance(value, bool) or not ok(value):
                bad.append(f"{key}={value!r} (expected {expected})")
    return bad
