"""The evaluation step's options (``geolink eval``, the demo's and the study's evaluations).

Presets in ``geolink/configs/eval/``: ``paper`` (both directions, clean, the paper's protocol),
``weather`` (Table 4: drone->satellite under the four weather conditions) and ``official``
(the paper's and the University-1652 evaluator's protocols side by side). No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from geolink.errors import ConfigError
from geolink.utils import conf

STEP = "eval"
CLEAN = "clean"


class Direction(conf.Choice):
    both = "both"
    drone2satellite = "drone2satellite"
    satellite2drone = "satellite2drone"


class Protocol(conf.Choice):
    paper = "paper"  # the paper's evaluator (GeoLink / Sample4Geo)
    official = "official"  # University-1652's own evaluator (junk images handled)
    both = "both"


class Ranking(conf.Choice):
    torch = "torch"
    faiss = "faiss"


@dataclass
class EvalConfig:
    direction: Direction = Direction.both
    # "clean" and/or weather conditions applied to drone images; "paper" = Table 4's four
    conditions: list[str] = field(default_factory=lambda: [CLEAN])
    protocol: Protocol = Protocol.paper
    batch_size: int = 32
    device: str | None = None  # default: cuda when present
    workers: int = 0  # data-loader worker processes
    topk: int = 10  # gallery items per query in the top-k CSVs
    backend: Ranking = Ranking.torch

    def protocols(self) -> list[str]:
        return ["paper", "official"] if self.protocol == "both" else [str(self.protocol)]


def resolve(
    overrides: EvalConfig | Mapping[str, Any] | Sequence[Any] | None = None,
    preset: str | None = None,
) -> EvalConfig:
    """The step's config, strictly; weather names are checked and ``paper`` expanded now."""
    from geolink.data.weather import PAPER_CONDITIONS, check_condition

    if isinstance(overrides, EvalConfig):
        cfg = overrides
    else:
        cfg = conf.load(EvalConfig, STEP, preset, overrides=overrides or {})
    names: list[str] = []
    for c in cfg.conditions:
        if c == "paper":
            names += PAPER_CONDITIONS
        else:
            names.append(c if c == CLEAN else check_condition(c))
    names = list(dict.fromkeys(names))
    if not names:
        raise ConfigError("evaluation needs at least one condition (clean or a weather)")
    bad = [
        f"{k}={v} (expected >= {lo})"
        for k, v, lo in (
            ("batch_size", cfg.batch_size, 1),
            ("workers", cfg.workers, 0),
            ("topk", cfg.topk, 1),
        )  # fmt: skip
        if v < lo
    ]
    if bad:
        raise ConfigError("invalid evaluation option(s): " + "; ".join(bad))
    return replace(cfg, conditions=names)


__all__ = ["CLEAN", "STEP", "Direction", "EvalConfig", "Protocol", "Ranking", "resolve"]
