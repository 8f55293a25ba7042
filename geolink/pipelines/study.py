"""``geolink study``: the ablation study on the synthetic benchmark, as a resumable pipeline.

A study is a YAML file (shipped ones in ``geolink/configs/study/``): the benchmark (a synth
preset), the training region, the seeds, and named runs, each a training preset plus
``key=value`` overrides. Stages (recorded in ``stages.json``, skipped when done, safe to share
between processes started with ``--shard I/N``):

synthesize -> reconstruct (+ Point-NN features) -> one stage per (run, seed): train, then
evaluate the validation-selected checkpoint on every region, both directions -> results.json
+ results.md (mean ± std over seeds, chance and the untrained encoder beside them, and one
verdict per question of the study file).

Model selection never reads test data: ``best.safetensors`` is the best epoch on a validation
split held out from the training locations (``train.select=val``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolink.errors import ConfigError
from geolink.pipelines.stages import Stages, start_over
from geolink.pipelines.steps import Chain, EvalJob, Evaluate, Step, Train, run_all
from geolink.utils import conf

logger = logging.getLogger(__name__)

DIRECTIONS = ("drone2satellite", "satellite2drone")
SHORT = {"drone2satellite": "D→S", "satellite2drone": "S→D"}


@dataclass
class RunSpec:
    preset: str  # a training preset (geolink/configs/train)
    overrides: list[str] = field(default_factory=list)
    label: str = ""
    points: bool = True  # needs the reconstruction (the 3D branch)


@dataclass
class Question:
    text: str
    compare: list[str]  # [run A, run B]: is A different from B?


@dataclass
class StudyConfig:
    name: str  # required
    synth_preset: str = "demo"
    synth_overrides: dict[str, Any] = field(default_factory=dict)
    data_seed: int = 0
    train_region: str = ""  # empty: the benchmark's first region
    near: list[str] = field(default_factory=list)  # near targets (the rest are far)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    recon_backend: str = "depth"
    overrides: list[str] = field(default_factory=list)  # for every run
    runs: dict[str, RunSpec] = field(default_factory=dict)
    questions: list[Question] = field(default_factory=list)
    reference: bool = True  # evaluate the untrained encoder too


STEP = "study"  # shipped studies in geolink/configs/study/


def study_names() -> list[str]:
    return conf.preset_names(STEP)


def load_study(name_or_path: str) -> StudyConfig:
    """A shipped study by name, or a YAML file (which may ``_base_:`` a shipped one); unknown
    keys, wrong types and questions about runs the study does not have are errors."""
    path = Path(name_or_path)
    if path.is_file():
        cfg = conf.load(StudyConfig, STEP, file=path)
        where = str(path)
    elif name_or_path in study_names():
        cfg = conf.load(StudyConfig, STEP, name_or_path)
        where = f"study '{name_or_path}'"
    else:
        raise ConfigError(
            f"unknown study '{name_or_path}': not a file, nor one of {', '.join(study_names())}"
        )
    return check(cfg, where)


def check(cfg: StudyConfig, where: str) -> StudyConfig:
    if not cfg.runs:
        raise ConfigError(f"{where}: a study needs at least one run")
    for q in cfg.questions:
        missing = [r for r in q.compare if r not in cfg.runs]
        if len(q.compare) != 2 or missing:
            raise ConfigError(
                f"{where}: question '{q.text}' must compare two runs of the study "
                f"(unknown: {missing})"
            )
    if not cfg.seeds:
        raise ConfigError(f"{where}: seeds is empty")
    for name, spec in cfg.runs.items():
        try:
            conf.preset_layers("train", spec.preset)
        except ConfigError as e:
            raise ConfigError(f"{where}: run '{name}': {e}") from None
    return cfg


def plan(cfg: StudyConfig, only: list[str] | None = None) -> list[tuple[str, int]]:
    """Every (run, seed) of the study, in a fixed order (the shards split this list)."""
    names = list(cfg.runs)
    if only:
        unknown = [o for o in only if o not in cfg.runs]
        if unknown:
            raise ConfigError(f"--only: unknown run(s) {unknown}; runs: {', '.join(names)}")
        names = [n for n in names if n in only]
    return [(n, s) for s in cfg.seeds for n in names]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as e:
        raise ConfigError(f"--shard '{text}' must look like I/N, e.g. 0/2") from e
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard '{text}': need 0 <= I < N")
    return i, n


def run_study(
    cfg: StudyConfig,
    out: str | Path,
    shard: tuple[int, int] = (0, 1),
    only: list[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Run (or resume) the study's share ``shard`` into ``out``; returns results.md's path
    (written by whichever process finds every stage done)."""
    from geolink.pipelines.study_results import write_results

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        if shard[1] != 1:
            raise ConfigError("--overwrite starts a study over: run it in one process (no --shard)")
        start_over(out, OUTPUTS)
    conf.record(out, cfg, STEP)
    demo = as_demo(cfg)
    stages = Stages(out)
    shared, todo = study_steps(cfg, demo, out), plan(cfg, only)
    index, count = shard
    if index == 0:
        run_all(shared, stages)
    else:
        stages.wait_for([s.name for s in shared if s.name != "reference"])
    mine = [s for i, s in enumerate(run_steps(cfg, demo, out, todo)) if i % count == index]
    run_all(mine, stages)
    stages.refresh()
    if not all(stages.done(f"run_{n}_s{s}") for n, s in todo):
        logger.info("study: other shards still running; results are written when all are done")
        return out / "results.md"
    return write_results(restrict(cfg, only), out, _order(cfg, demo))


OUTPUTS = ("data", "recon", "runs", "stages.json", "config.yaml", "results.json", "results.md")


def as_demo(cfg: StudyConfig) -> Any:
    """The study's shared steps use the demo's: its benchmark, clouds and reference."""
    from geolink.pipelines.demo import DemoConfig

    return DemoConfig(
        synth_preset=cfg.synth_preset,
        synth_overrides=cfg.synth_overrides,
        seed=cfg.data_seed,
        train_region=cfg.train_region,
        recon_backend=cfg.recon_backend,
        # the untrained reference is the first 2D-only run's encoder
        baseline_preset=next(
            (r.preset for r in cfg.runs.values() if not r.points),
            next(iter(cfg.runs.values())).preset,
        ),
        # the clouds are made for the first run with a 3D branch
        geolink_preset=next((r.preset for r in cfg.runs.values() if r.points), "demo"),
        train_overrides=conf.merged(cfg.overrides),
    )


def study_steps(cfg: StudyConfig, demo: Any, out: Path) -> list[Step]:
    """Shard 0's steps: the benchmark, the clouds and the untrained reference."""
    from geolink.pipelines.demo import plan as demo_plan

    keep = {"synthesize", "reconstruct", *(["reference"] if cfg.reference else [])}
    return [s for s in demo_plan(demo, out) if s.name in keep]


def run_steps(cfg: StudyConfig, demo: Any, out: Path, todo: list[tuple[str, int]]) -> list[Step]:
    """One step per (run, seed): train, then evaluate its best checkpoint on every region."""
    from dataclasses import replace

    from geolink.pipelines.demo import train_overrides

    data_dir, recon_dir, runs = out / "data", out / "recon", out / "runs"
    regions = _order(cfg, demo)
    clean = {"direction": "both", "batch_size": demo.eval_batch_size}
    steps: list[Step] = []
    for name, seed in todo:
        spec, run = cfg.runs[name], runs / f"{name}_s{seed}"
        more = {"data.points": str(recon_dir)} if spec.points else {"model.point.enabled": False}
        shared = train_overrides(replace(demo, seed=seed), data_dir, regions[0], runs)
        train = Train("train", spec.preset, conf.merged(shared, spec.overrides, more), run)
        ckpt = run / "checkpoints" / "best.safetensors"
        ev = Evaluate("eval", ckpt, run, data_dir, [EvalJob(r, clean) for r in regions])
        steps.append(Chain(f"run_{name}_s{seed}", [train, ev]))
    return steps


def restrict(cfg: StudyConfig, only: list[str] | None) -> StudyConfig:
    """The study limited to ``only`` runs (and the questions that compare two of them)."""
    from dataclasses import replace

    if not only:
        return cfg
    runs = {k: v for k, v in cfg.runs.items() if k in only}
    questions = [q for q in cfg.questions if all(r in runs for r in q.compare)]
    return replace(cfg, runs=runs, questions=questions)


def _order(cfg: StudyConfig, demo: Any) -> list[str]:
    from geolink.pipelines.demo import regions_of

    train, targets = regions_of(demo)
    return [train, *targets]
