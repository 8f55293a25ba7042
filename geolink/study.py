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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolink.errors import ConfigError
from geolink.evaluate.metrics import mean_std  # re-exported: the study's aggregation
from geolink.utils import conf
from geolink.utils.io import atomic_write_json, atomic_write_text

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


OPEN_KEYS = ("synth_overrides",)


STEP = "study"  # shipped studies in geolink/configs/study/


def study_names() -> list[str]:
    return conf.preset_names(STEP)


def load_study(name_or_path: str) -> StudyConfig:
    """A shipped study by name, or a YAML file (which may ``_base_:`` a shipped one); unknown
    keys, wrong types and questions about runs the study does not have are errors."""
    path = Path(name_or_path)
    if path.is_file():
        cfg = conf.load(StudyConfig, STEP, file=path, open_keys=OPEN_KEYS)
        where = str(path)
    elif name_or_path in study_names():
        cfg = conf.load(StudyConfig, STEP, name_or_path, open_keys=OPEN_KEYS)
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
) -> Path:
    """Run (or resume) the study's share ``shard`` into ``out``; returns results.md's path
    (written by whichever process finds every stage done)."""
    from geolink.demo import (
        DemoConfig,
        Stages,
        benchmark_regions,
        evaluate_untrained,
        reconstruct_region,
        synthesize,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    conf.record(
        out, cfg, STEP, hint="use another --out or delete the folder"
    )  # config.yaml; another study in this folder is refused
    demo = DemoConfig(
        synth_preset=cfg.synth_preset,
        synth_overrides=cfg.synth_overrides,
        seed=cfg.data_seed,
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
    stages = Stages(out)
    data_dir, recon_dir, runs = out / "data", out / "recon", out / "runs"
    index, count = shard
    if index == 0:
        stages.run("synthesize", lambda: str(synthesize(demo, data_dir)))
        regions = benchmark_regions(data_dir)
        region = cfg.train_region or regions[0]
        stages.run("reconstruct", lambda: reconstruct_region(demo, data_dir, region, recon_dir))
        if cfg.reference:
            stages.run(
                "reference",
                lambda: evaluate_untrained(
                    demo, data_dir, runs / "untrained", _order(cfg, regions)
                ),
            )
    else:
        _wait_for(stages, ["synthesize", "reconstruct"])
        regions = benchmark_regions(data_dir)
        region = cfg.train_region or regions[0]
    todo = plan(cfg, only)
    for i, (name, seed) in enumerate(todo):
        if i % count != index:
            continue
        stages.run(
            f"run_{name}_s{seed}",
            lambda name=name, seed=seed: _train_eval(
                cfg, demo, name, seed, data_dir, recon_dir, runs, _order(cfg, regions)
            ),
        )
    stages.refresh()
    names = [f"run_{n}_s{s}" for n, s in todo]
    if not all(stages.done(n) for n in names):
        logger.info("study: other shards still running; results are written when all are done")
        return out / "results.md"
    return write_results(restrict(cfg, only), out, _order(cfg, regions))


def restrict(cfg: StudyConfig, only: list[str] | None) -> StudyConfig:
    """The study limited to ``only`` runs (and the questions that compare two of them)."""
    from dataclasses import replace

    if not only:
        return cfg
    runs = {k: v for k, v in cfg.runs.items() if k in only}
    questions = [q for q in cfg.questions if all(r in runs for r in q.compare)]
    return replace(cfg, runs=runs, questions=questions)


def _order(cfg: StudyConfig, regions: list[str]) -> list[str]:
    train = cfg.train_region or regions[0]
    return [train, *[r for r in regions if r != train]]


def _wait_for(stages: Any, names: list[str], timeout_s: float = 7200.0) -> None:
    import time

    t0 = time.monotonic()
    while not all(stages.done(n) for n in names):
        if time.monotonic() - t0 > timeout_s:
            raise ConfigError(f"waited {timeout_s:.0f} s for shard 0 to finish {names}")
        time.sleep(5)
        stages.refresh()


def _train_eval(
    cfg: StudyConfig,
    demo: Any,
    name: str,
    seed: int,
    data_dir: Path,
    recon_dir: Path,
    runs: Path,
    regions: list[str],
) -> dict:
    from dataclasses import replace

    from geolink.config import load_config
    from geolink.demo import evaluate_checkpoint, train_overrides
    from geolink.train.trainer import train

    spec = cfg.runs[name]
    run = runs / f"{name}_s{seed}"
    over = [train_overrides(replace(demo, seed=seed), data_dir, regions[0], runs), *spec.overrides]
    over.append({"data.points": str(recon_dir)} if spec.points else {"model.point.enabled": False})
    resume = (run / "checkpoints" / "trainer_state.pt").is_file()
    train(load_config(spec.preset, over), run, resume=resume)
    return evaluate_checkpoint(
        replace(demo, conditions=()), run / "checkpoints" / "best.safetensors", run, data_dir,
        regions, weather=[],
    )  # fmt: skip


# ---- aggregation ---------------------------------------------------------------------------


def _metric(run: Path, region: str, direction: str) -> dict | None:
    from geolink.report import pick_metric, read_records

    return pick_metric(read_records(run, region), direction)


def aggregate(cfg: StudyConfig, out: Path, regions: list[str]) -> dict[str, Any]:
    """{run: {direction: {region: {"R@1": [m, sd, n], "AP": [...]}}}} over the seeds."""
    res: dict[str, Any] = {}
    for name in cfg.runs:
        res[name] = {}
        for d in DIRECTIONS:
            res[name][d] = {}
            for r in regions:
                ms = [_metric(out / "runs" / f"{name}_s{s}", r, d) for s in cfg.seeds]
                ms = [m for m in ms if m is not None]
                if ms:
                    res[name][d][r] = {
                        k: [*mean_std([m[k] for m in ms]), len(ms)] for k in ("R@1", "AP")
                    }
    return res


def verdict(a: list[float], b: list[float]) -> str:
    """'higher' / 'lower' when the mean difference exceeds twice its standard error (Welch),
    else 'no measurable difference'."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    se = math.sqrt(sa**2 / len(a) + sb**2 / len(b))
    diff = ma - mb
    if se == 0:
        return "no measurable difference" if diff == 0 else ("higher" if diff > 0 else "lower")
    if abs(diff) <= 2 * se:
        return "no measurable difference"
    return "higher" if diff > 0 else "lower"


def _seed_values(out: Path, name: str, seeds: list[int], regions: list[str], d: str) -> list[float]:
    """Per seed: mean R@1 over ``regions`` in direction ``d``."""
    vals = []
    for s in seeds:
        ms = [_metric(out / "runs" / f"{name}_s{s}", r, d) for r in regions]
        if all(m is not None for m in ms):
            vals.append(sum(m["R@1"] for m in ms) / len(ms))
    return vals


def write_results(cfg: StudyConfig, out: Path, regions: list[str]) -> Path:
    from geolink.report import chance_levels

    train, targets = regions[0], regions[1:]
    near = [t for t in targets if t in cfg.near] or targets[:1]
    far = [t for t in targets if t not in near]
    agg = aggregate(cfg, out, regions)
    chance = chance_levels(out / "data", regions)
    ref = {d: {r: _metric(out / "runs" / "untrained", r, d) for r in regions} for d in DIRECTIONS}
    answers = []
    for q in cfg.questions:
        a, b = q.compare
        parts = []
        for group, regs in (("near", near), ("far", far)):
            for d in DIRECTIONS:
                va = _seed_values(out, a, cfg.seeds, regs, d)
                vb = _seed_values(out, b, cfg.seeds, regs, d)
                if len(va) < 2 or len(vb) < 2:
                    continue
                (ma, sa), (mb, sb) = mean_std(va), mean_std(vb)
                parts.append(
                    {
                        "targets": group,
                        "direction": d,
                        "a": [ma, sa],
                        "b": [mb, sb],
                        "verdict": verdict(va, vb),
                    }
                )
        answers.append({"question": q.text, "a": a, "b": b, "parts": parts})
    results = {
        "study": cfg.name,
        "seeds": cfg.seeds,
        "train_region": train,
        "near": near,
        "far": far,
        "runs": agg,
        "chance": chance,
        "untrained": ref,
        "answers": answers,
    }
    atomic_write_json(out / "results.json", results)
    path = out / "results.md"
    atomic_write_text(path, render_markdown(cfg, results, regions))
    return path


def _cell(c: list | dict | None, key: str = "R@1") -> str:
    if c is None:
        return "–"
    if isinstance(c, dict) and key in c and isinstance(c[key], list):
        m, sd, _ = c[key]
        return f"{m:.1f} ± {sd:.1f}"
    return f"{c[key]:.1f}"


def render_markdown(cfg: StudyConfig, res: dict, regions: list[str]) -> str:
    train = regions[0]
    names = {
        t: ("same area" if t == train else ("near" if t in res["near"] else "far")) for t in regions
    }
    lines = [
        f"# Study `{cfg.name}`: trained on {train}, seeds {cfg.seeds}",
        "",
        "R@1 (%), mean ± sample std over seeds, paper protocol; the checkpoint of each run is "
        "its best epoch on a validation split of the training locations (no test data).",
    ]
    for d in DIRECTIONS:
        head = " | ".join(f"{t} ({names[t]})" for t in regions)
        lines += ["", f"## {SHORT[d]}", "", f"| run | {head} |", "|---" * (len(regions) + 1) + "|"]
        for name, spec in cfg.runs.items():
            cells = [_cell(res["runs"][name][d].get(t)) for t in regions]
            lines.append(f"| {spec.label or name} | " + " | ".join(cells) + " |")
        if any(res["untrained"][d].get(t) for t in regions):
            cells = [_cell(res["untrained"][d].get(t)) for t in regions]
            lines.append("| *pretrained features, no training* | " + " | ".join(cells) + " |")
        cells = [_cell(res["chance"][d].get(t)) for t in regions]
        lines.append("| *chance* | " + " | ".join(cells) + " |")
    lines += ["", "## Verdicts", ""]
    lines.append(
        "A difference counts when the mean over seeds differs by more than twice its standard "
        "error (Welch); R@1 averaged over the near / far targets."
    )
    lines.append("")
    for ans in res["answers"]:
        a, b = cfg.runs[ans["a"]].label or ans["a"], cfg.runs[ans["b"]].label or ans["b"]
        bits = [
            f"{p['targets']} {SHORT[p['direction']]} {p['a'][0]:.1f} ± {p['a'][1]:.1f} vs "
            f"{p['b'][0]:.1f} ± {p['b'][1]:.1f}: {p['verdict']}"
            for p in ans["parts"]
        ]
        lines.append(f"- **{ans['question']}** {a} vs {b}: " + "; ".join(bits) + ".")
    return "\n".join(lines) + "\n"
