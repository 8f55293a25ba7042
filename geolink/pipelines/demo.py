"""``geolink demo``: the synthetic benchmark end to end, ending in a report.

Stages (each resumable: a finished stage is recorded in ``stages.json`` and skipped on re-run):
synthesize regions -> reconstruct point clouds of the training region with COLMAP -> cache
Point-NN features -> train the 2D baseline and GeoLink on one region -> evaluate both zero-shot
on the other regions (both directions) and under the paper's four weather conditions -> figures
-> ``report.md`` (+ ``report.html``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from geolink.errors import ConfigError
from geolink.pipelines.figures import demo_figures
from geolink.pipelines.stages import Stages, start_over
from geolink.pipelines.steps import (
    Call,
    EvalJob,
    Evaluate,
    Reconstruct,
    Step,
    Synthesize,
    Train,
    run_all,
)
from geolink.utils import conf

logger = logging.getLogger(__name__)


STEP = "demo"  # presets in geolink/configs/demo/: full (the default), quick


class CheckpointChoice(conf.Choice):
    best = "best"  # the best epoch on a validation split held out from the training locations
    last = "last"


@dataclass
class DemoConfig:
    synth_preset: str = "demo"
    synth_overrides: dict[str, Any] = field(default_factory=dict)  # SynthParams options
    seed: int = 0
    train_region: str = ""  # empty = the first region of the benchmark
    # depth fusion of the rendered depth maps (seconds for 200 scenes); colmap: SfM from the
    # drone images alone (about 2.5 s a scene on 2 cores)
    recon_backend: str = "depth"
    recon_workers: int = 2
    geolink_preset: str = "demo"
    baseline_preset: str = "demo_baseline"
    # a partial training config (nested keys) applied to both models' presets
    train_overrides: dict[str, Any] = field(default_factory=dict)
    conditions: tuple[str, ...] = ("fog_rain", "fog_snow", "rain_snow", "wind")
    # target regions evaluated under weather (the first target, the near one, by default: each
    # condition costs a full pass over its queries); empty = every target
    weather_regions: tuple[str, ...] | None = None
    # evaluate the encoder before training ("pretrained features, no training")
    reference: bool = True
    # which checkpoint is evaluated: best (the best epoch on a validation split held out from
    # the training locations; no test data is read) | last
    checkpoint: CheckpointChoice = CheckpointChoice.best
    eval_batch_size: int = 64

    RUNTIME: ClassVar[tuple[str, ...]] = ("recon_workers", "eval_batch_size")


def resolve(
    preset: str | None = "full", overrides: Mapping[str, Any] | Sequence[str] | None = None
) -> DemoConfig:
    """The demo's config: ``preset`` (``geolink/configs/demo``), then ``overrides``, strictly;
    the presets and overrides it names for the other steps are checked now, not mid-run."""
    cfg = conf.load(DemoConfig, STEP, preset, overrides=overrides or {})
    return check(cfg)


def check(cfg: DemoConfig) -> DemoConfig:
    from geolink.data.synthetic.presets import resolve_params
    from geolink.data.weather import CONDITIONS
    from geolink.recon.base import BACKENDS

    resolve_params(cfg.synth_preset, **cfg.synth_overrides)
    for preset in (cfg.geolink_preset, cfg.baseline_preset):
        conf.preset_layers("train", preset)  # an unknown preset lists the known ones
    if cfg.recon_backend not in BACKENDS:
        raise ConfigError(
            f"demo recon_backend '{cfg.recon_backend}'; available: {', '.join(BACKENDS.names())}"
        )
    bad = [c for c in cfg.conditions if c not in CONDITIONS]
    if bad:
        raise ConfigError(f"unknown weather condition(s) {bad}; available: {', '.join(CONDITIONS)}")
    return cfg


def regions_of(cfg: DemoConfig) -> tuple[str, list[str]]:
    """The training region and the targets, from the benchmark's resolved parameters."""
    from geolink.data.synthetic.presets import resolve_params

    regions = list(resolve_params(cfg.synth_preset, **cfg.synth_overrides).regions)
    train_region = cfg.train_region or regions[0]
    if train_region not in regions:
        raise ConfigError(f"demo train_region '{train_region}' is not one of {regions}")
    return train_region, [r for r in regions if r != train_region]


def plan(cfg: DemoConfig, out: Path) -> list[Step]:
    """Every step of the demo, in order: what runs and what the report prints."""
    from geolink.config import load_config

    data_dir, recon_dir, runs = out / "data", out / "recon", out / "runs"
    train_region, targets = regions_of(cfg)
    # clouds of the size the 3D model is configured for (training refuses any other)
    point_over = {"model": {"point": cfg.train_overrides.get("model", {}).get("point", {})}}
    num_points = load_config(cfg.geolink_preset, point_over).model.point.num_points
    steps: list[Step] = [
        Synthesize("synthesize", data_dir, cfg.synth_preset, cfg.seed, cfg.synth_overrides),
        Reconstruct(
            "reconstruct",
            data_dir,
            train_region,
            recon_dir,
            cfg.recon_backend,
            cfg.recon_workers,
            num_points,
        ),  # fmt: skip
    ]
    regions = [train_region, *targets]
    if cfg.reference:
        run = runs / "untrained"
        steps.append(
            Call(
                "reference",
                lambda: evaluate_untrained(cfg, data_dir, run, regions),
                "the baseline's encoder before training, evaluated like the others",
            )  # fmt: skip
        )
    for kind, preset in (("baseline", cfg.baseline_preset), ("geolink", cfg.geolink_preset)):
        more = {"data.points": str(recon_dir)} if kind == "geolink" else {}
        more = more or {"model.point.enabled": False}
        over = conf.merged(train_overrides(cfg, data_dir, train_region, runs), more)
        steps.append(Train(f"train_{kind}", preset, over, runs / kind))
    for kind in ("baseline", "geolink"):
        ckpt = runs / kind / "checkpoints" / f"{cfg.checkpoint}.safetensors"
        jobs = eval_jobs(cfg, regions, weather_regions(cfg, targets))
        steps.append(Evaluate(f"evaluate_{kind}", ckpt, runs / kind, data_dir, jobs))
    steps.append(
        Call(
            "figures",
            lambda: demo_figures(
                out, data_dir, recon_dir, runs, targets[0], cfg.seed, str(cfg.checkpoint)
            ),
        )  # fmt: skip
    )
    return steps


def eval_jobs(cfg: DemoConfig, regions: list[str], weather: list[str]) -> list[EvalJob]:
    """Both directions on every region; drone->satellite under the weather conditions on the
    ``weather`` regions (Table 4 is a cross-area setting), into the same folder."""
    clean = {"direction": "both", "batch_size": cfg.eval_batch_size}
    jobs = []
    for region in regions:
        jobs.append(EvalJob(region, clean))
        if region in weather and cfg.conditions:
            conds = ["clean", *cfg.conditions]
            jobs.append(
                EvalJob(region, {**clean, "direction": "drone2satellite", "conditions": conds})
            )
    return jobs


OUTPUTS = ("data", "recon", "runs", "figures", "stages.json", "config.yaml", "report.md",
           "report.html")  # fmt: skip


def run_demo(
    out: str | Path, quick: bool = False, cfg: DemoConfig | None = None, overwrite: bool = False
) -> Path:
    """Run (or resume) the demo into ``out``; returns the path of ``report.md``. The resolved
    config is written to ``out/config.yaml``; resuming with another one is refused unless
    ``overwrite``, which removes the previous run's outputs first."""
    cfg = check(cfg) if cfg is not None else resolve("quick" if quick else "full")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        start_over(out, OUTPUTS)
    conf.record(out, cfg, STEP)
    steps, stages = plan(cfg, out), Stages(out)
    run_all(steps, stages)
    from geolink.pipelines.report import write_report

    train_region, targets = regions_of(cfg)
    return write_report(out, cfg, steps, train_region, targets, stages.seconds())


def weather_regions(cfg: DemoConfig, targets: list[str]) -> list[str]:
    if not cfg.conditions:
        return []
    if cfg.weather_regions is None:
        return targets[:1]
    return [t for t in targets if t in cfg.weather_regions] if cfg.weather_regions else targets


def train_overrides(cfg: DemoConfig, data_dir: Path, region: str, runs: Path) -> dict[str, Any]:
    """The partial training config every demo model shares (the report prints the same)."""
    shared = {
        "data": {"dataset": "synthetic", "root": str(data_dir), "options": {"regions": [region]}},
        # both models start from the same frozen trunk: its activations are computed once
        "train": {"seed": cfg.seed, "frozen_cache_dir": str(runs / "frozen_cache")},
    }
    return conf.merged(shared, cfg.train_overrides)


def evaluate_untrained(cfg: DemoConfig, data_dir: Path, run: Path, regions: list[str]) -> dict:
    """The baseline's encoder as training starts (pretrained backbone, freshly initialised
    MixVPR, the same seed), saved as a checkpoint and evaluated like the trained models."""
    from geolink.checkpoint import save_model
    from geolink.config import load_config, to_yaml
    from geolink.models.geolink import GeoLink
    from geolink.train.trainer import seed_everything

    over = train_overrides(cfg, data_dir, regions[0], run.parent)
    tc = load_config(cfg.baseline_preset, [over, {"model.point.enabled": False}])
    seed_everything(tc.train.seed)
    model = GeoLink(tc.model, tc.loss)
    ckpt = save_model(
        model, run / "checkpoints" / "untrained.safetensors", to_yaml(tc), {"epoch": 0}
    )
    clean = {"direction": "both", "batch_size": cfg.eval_batch_size}
    return Evaluate("reference", ckpt, run, data_dir, [EvalJob(r, clean) for r in regions]).run()
