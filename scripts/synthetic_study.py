#!/usr/bin/env python3
"""The synthetic analogue of the paper's study (Tables 2, 3 and 5): train on one region, test
zero-shot on the others, 2D baseline vs GeoLink vs single-loss ablations, several seeds.

Usage::

    python scripts/synthetic_study.py --out DIR [--seeds 0 1 2] [--epochs N]
        [--configs baseline mme ga sc rd geolink] [--steps N] [--model-overrides k=v ...]

Stages (all resumable; re-running the same command skips what is already on disk):

1. generate the ``demo`` synthetic benchmark once (``DIR/data``, the demo's ``_synthesize``);
2. reconstruct point clouds of the training region once with COLMAP (``DIR/recon``);
3. per config and seed, train on the training region (``DIR/runs/<config>_s<seed>``) and
   evaluate every region, both directions, paper protocol (``.../eval/<region>/metrics.json``);
4. aggregate: mean ± std over seeds of R@1 and AP per target region and direction plus the
   cross-area mean -> ``DIR/results.json`` and ``DIR/results.md``.

The settings of a study are recorded in ``DIR/study.json``; running again with other settings
into the same folder is refused (use another ``--out``), so every table comes from one setting.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("synthetic_study")

DIRECTIONS = ("drone2satellite", "satellite2drone")
SHORT = {"drone2satellite": "D→S", "satellite2drone": "S→D"}
METRICS = ("R@1", "AP")

# Table 5 rows: (training preset, overrides). The 3D configs get data.points added.
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("cpu_baseline", ["model.point.enabled=false", "loss.use_sc=false"]),
    "mme": ("cpu", ["loss.use_sc=false", "loss.use_rd=false", "loss.use_ga=false"]),
    "ga": ("cpu", ["loss.use_sc=false", "loss.use_rd=false"]),
    "sc": ("cpu", ["loss.use_rd=false", "loss.use_ga=false"]),
    "rd": ("cpu", ["loss.use_sc=false", "loss.use_ga=false"]),
    "geolink": ("cpu", []),
    # ours, not in the paper: standardise the Point-NN descriptor before the head
    "geolink_bn": ("cpu", ["model.point.input_norm=batch"]),
    "geolink_bn_linear": ("cpu", ["model.point.input_norm=batch", "model.point.head=linear"]),
    "mme_bn": (
        "cpu",
        [
            "model.point.input_norm=batch",
            "loss.use_sc=false",
            "loss.use_rd=false",
            "loss.use_ga=false",
        ],
    ),
    "geolink_bn_nosc": ("cpu", ["model.point.input_norm=batch", "loss.use_sc=false"]),
    "geolink_bn_l1": ("cpu", ["model.point.input_norm=batch", "loss.lambda_sc=1.0"]),
}
LABELS = {
    "baseline": "2D baseline",
    "mme": "Baseline+MME (L_cc)",
    "ga": "+L_ga",
    "sc": "+L_sc",
    "rd": "+L_rd",
    "geolink": "+L_ga+L_sc+L_rd (GeoLink)",
    "geolink_bn": "GeoLink, standardised point input (ours)",
    "geolink_bn_linear": "GeoLink, standardised point input, linear head (ours)",
    "mme_bn": "Baseline+MME (L_cc), standardised point input (ours)",
    "geolink_bn_nosc": "GeoLink without L_sc, standardised point input (ours)",
    "geolink_bn_l1": "GeoLink with λ = 1, standardised point input (ours)",
}

# A CPU-sized model shared by every config (the study is a comparison, not a record): a small
# ViT (32-d, 2 blocks) on 56 px inputs, narrow MixVPR, small point experts and CLUB.
MODEL_OVERRIDES = [
    "model.image.backbone=test_vit",
    "model.image.img_size=56",
    "model.image.mix_out_channels=32",
    "model.image.mix_out_rows=2",
    "model.point.expert_channels=16",
    "loss.club_hidden=64",
    "train.batch_size=8",
    "data.num_workers=0",
]


def run_name(config: str, seed: int) -> str:
    """Folder name of one training run under ``DIR/runs``."""
    return f"{config}_s{seed}"


def train_overrides(
    config: str,
    seed: int,
    data_dir: Path,
    region: str,
    recon_dir: Path,
    epochs: int,
    steps: int,
    model_overrides: list[str],
) -> tuple[str, list[str]]:
    """(preset, overrides) of one training run."""
    preset, extra = CONFIGS[config]
    over = [
        "data.dataset=synthetic",
        f"data.root={data_dir}",
        f"data.options.regions=[{region}]",
        f"train.seed={seed}",
        f"train.epochs={epochs}",
        f"train.max_steps_per_epoch={steps}",
        *model_overrides,
        *extra,
    ]
    if "model.point.enabled=false" not in extra:
        over.append(f"data.points={recon_dir}")
    return preset, over


def _train_and_eval(
    args: argparse.Namespace,
    config: str,
    seed: int,
    data_dir: Path,
    recon_dir: Path,
    train_region: str,
    regions: list[str],
) -> dict[str, float]:
    """Train one run (resuming a partial one) and evaluate it on every region."""
    from geolink.checkpoint import load_image_encoder
    from geolink.config import load_config
    from geolink.data import build_dataset
    from geolink.evaluate.evaluator import evaluate
    from geolink.train.trainer import train
    from geolink.utils.io import atomic_write_json

    run = Path(args.out) / "runs" / run_name(config, seed)
    done = run / "train_done.json"
    seconds: dict[str, float] = {}
    if not done.is_file():
        preset, over = train_overrides(
            config, seed, data_dir, train_region, recon_dir, args.epochs, args.steps,
            args.model_overrides,
        )  # fmt: skip
        resume = (run / "checkpoints" / "trainer_state.pt").is_file()
        t0 = time.perf_counter()
        train(load_config(preset, over), run, resume=resume)
        seconds["train"] = time.perf_counter() - t0
        atomic_write_json(done, {"preset": preset, "overrides": over, **seconds})
    t0 = time.perf_counter()
    encoder, meta = load_image_encoder(run / "checkpoints" / args.checkpoint)
    for region in regions:
        if (run / "eval" / region / "metrics.json").is_file():
            continue
        ds = build_dataset("synthetic", data_dir, regions=[region])
        evaluate(
            encoder,
            ds,
            directions="both",
            conditions=["clean"],
            out_dir=run / "eval" / region,
            dataset_name=region,
            batch_size=32,
            model_key=meta["sha256"],
            cache_dir=run / "eval" / "cache",
        )
    seconds["eval"] = time.perf_counter() - t0
    return seconds


# ---- aggregation ---------------------------------------------------------------------------


def _mean_std(values: list[float]) -> dict[str, float | int]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    n = len(values)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": m, "std": s, "n": n}


def _record(path: Path, direction: str) -> dict[str, float] | None:
    """Clean, paper-protocol metrics of ``direction`` in one ``metrics.json`` (None if absent)."""
    if not path.is_file():
        return None
    for r in json.loads(path.read_text()):
        if (
            r.get("direction") == direction
            and r.get("condition") == "clean"
            and r.get("protocol") == "paper"
            and "@" not in str(r.get("set", ""))
        ):
            return r["metrics"]
    return None


def aggregate(
    runs_root: str | Path,
    configs: list[str],
    seeds: list[int],
    train_region: str,
    targets: list[str],
) -> dict[str, Any]:
    """Mean ± std over seeds of R@1 and AP per config, region and direction.

    Reads ``runs_root/<config>_s<seed>/eval/<region>/metrics.json``. Returns::

        {"configs": {config: {"seeds": [seeds found],
            "cells": {direction: {region: {metric: {"mean", "std", "n", "values"}}}},
            "cross_area": {direction: {metric: {"mean", "std", "n", "values"}}}}},
         "missing": ["path ...", ...]}

    ``region`` covers ``train_region`` (same-area reference) and ``targets``. The cross-area
    mean of a seed is the mean over ``targets`` of that seed's value; mean ± std are then taken
    over the seeds that have every target (so the spread is seed-to-seed, not region-to-region).
    """
    runs_root = Path(runs_root)
    out: dict[str, Any] = {"configs": {}, "missing": []}
    for config in configs:
        per: dict[str, dict[str, dict[str, list[float]]]] = {}
        cross: dict[str, dict[str, list[float]]] = {}
        found: set[int] = set()
        for direction in DIRECTIONS:
            per[direction] = {r: {m: [] for m in METRICS} for r in [train_region, *targets]}
            cross[direction] = {m: [] for m in METRICS}
            for seed in seeds:
                seed_targets: dict[str, list[float]] = {m: [] for m in METRICS}
                for region in [train_region, *targets]:
                    path = runs_root / run_name(config, seed) / "eval" / region / "metrics.json"
                    rec = _record(path, direction)
                    if rec is None:
                        out["missing"].append(f"{path} ({direction})")
                        continue
                    found.add(seed)
                    for m in METRICS:
                        per[direction][region][m].append(float(rec[m]))
                        if region in targets:
                            seed_targets[m].append(float(rec[m]))
                for m in METRICS:
                    if targets and len(seed_targets[m]) == len(targets):
                        cross[direction][m].append(sum(seed_targets[m]) / len(targets))
        out["configs"][config] = {
            "seeds": sorted(found),
            "cells": {
                d: {
                    r: {m: {**_mean_std(v), "values": v} for m, v in per[d][r].items()}
                    for r in per[d]
                }
                for d in DIRECTIONS
            },
            "cross_area": {
                d: {m: {**_mean_std(v), "values": v} for m, v in cross[d].items()}
                for d in DIRECTIONS
            },
        }
    return out


def chance_levels(
    data_dir: Path, regions: list[str], trials: int = 200, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """Expected R@1 and AP (%) of a random ranking, {direction: {region: {metric: value}}}
    (the demo report's floor row, :func:`geolink.report.chance_levels`)."""
    from geolink.report import chance_levels as levels

    return levels(data_dir, regions, trials, seed)


NCE_TERMS = ("nce_dro_sat", "nce_dro_pc", "nce_sat_pc")


def loss_diagnostics(
    runs_root: str | Path, configs: list[str], seeds: list[int], last: int = 4
) -> dict[str, dict[str, dict[str, float | int]]]:
    """Mean of the InfoNCE terms over the last ``last`` training records of each run, then
    mean ± std over seeds: {config: {term: {"mean", "std", "n"}}}. A term that stays at
    ln(batch size) means that pair of views was not told apart at all on the training data."""
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for config in configs:
        vals: dict[str, list[float]] = {}
        for seed in seeds:
            path = Path(runs_root) / run_name(config, seed) / "metrics.jsonl"
            if not path.is_file():
                continue
            recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            recs = [r for r in recs if r.get("kind") == "train"][-last:]
            for term in NCE_TERMS:
                if recs and all(term in r for r in recs):
                    vals.setdefault(term, []).append(sum(r[term] for r in recs) / len(recs))
        out[config] = {t: _mean_std(v) for t, v in vals.items()}
    return out


def point_feature_spread(recon_dir: Path) -> dict[str, float]:
    """How much the cached Point-NN descriptors (S, 1152) differ between scenes: mean pairwise
    cosine similarity raw and after subtracting the mean descriptor, and the ratio of the
    per-dimension spread across scenes to the mean magnitude."""
    import torch

    from geolink.recon.features import load_point_features

    feats = load_point_features(recon_dir)
    x = torch.stack([torch.as_tensor(v).float().flatten() for v in feats.values()])
    off = ~torch.eye(len(x), dtype=torch.bool)

    def mean_cos(y: torch.Tensor) -> float:
        y = torch.nn.functional.normalize(y, dim=1)
        return float((y @ y.T)[off].mean())

    return {
        "scenes": len(x),
        "cos_raw": mean_cos(x),
        "cos_centered": mean_cos(x - x.mean(0)),
        "spread_over_magnitude": float(x.std(0).mean() / x.abs().mean()),
    }


def diagnostics_markdown(diag: dict[str, Any], batch_size: int | None) -> str:
    """The loss-diagnostics table (and the Point-NN spread) as Markdown."""
    ref = f"ln({batch_size}) = {math.log(batch_size):.3f}" if batch_size else "ln(batch)"
    lines = [
        f"Training InfoNCE terms, mean of the last 4 logged steps, mean ± std over seeds "
        f"(a term at {ref} = views not told apart on the training data)",
        "",
        "| config | " + " | ".join(NCE_TERMS) + " |",
        "|---" * (1 + len(NCE_TERMS)) + "|",
    ]
    for config, terms in diag.get("losses", {}).items():
        cells = [_fmt3(terms[t]) if t in terms else "–" for t in NCE_TERMS]
        lines.append(f"| {LABELS.get(config, config)} | " + " | ".join(cells) + " |")
    spread = diag.get("point_features")
    if spread:
        lines += [
            "",
            f"Point-NN descriptors of the {spread['scenes']} training scenes: mean pairwise cosine "
            f"similarity {spread['cos_raw']:.4f} raw, {spread['cos_centered']:.4f} after "
            f"subtracting the mean descriptor; per-dimension spread / mean magnitude "
            f"{spread['spread_over_magnitude']:.3f}.",
        ]
    return "\n".join(lines) + "\n"


def _fmt3(cell: dict[str, Any]) -> str:
    if not cell["n"]:
        return "–"
    return f"{cell['mean']:.3f} ± {cell['std']:.3f}" if cell["n"] > 1 else f"{cell['mean']:.3f}"


def _fmt(cell: dict[str, Any]) -> str:
    if not cell["n"]:
        return "–"
    if cell["n"] == 1:
        return f"{cell['mean']:.2f} (1 seed)"
    return f"{cell['mean']:.2f} ± {cell['std']:.2f}"


def render_markdown(results: dict[str, Any], train_region: str, targets: list[str]) -> str:
    """One table per direction: rows = configs, columns = regions (R@1 | AP) + cross-area mean;
    a last row gives the chance level when ``results["chance"]`` is there."""
    parts = []
    for d in DIRECTIONS:
        cols = [f"{train_region} (same area)", *(f"{train_region}→{t}" for t in targets)]
        head = "| config | seeds | " + " | ".join(f"{c} R@1 | {c} AP" for c in cols)
        head += " | cross-area mean R@1 | cross-area mean AP |"
        lines = [f"**{SHORT[d]} ({d})**, %, mean ± std over seeds", "", head,
                 "|---" * (2 + 2 * len(cols) + 2) + "|"]  # fmt: skip
        for config, res in results["configs"].items():
            cells = []
            for region in [train_region, *targets]:
                cells += [_fmt(res["cells"][d][region][m]) for m in METRICS]
            cells += [_fmt(res["cross_area"][d][m]) for m in METRICS]
            seeds = ",".join(str(s) for s in res["seeds"]) or "–"
            lines.append(f"| {LABELS.get(config, config)} | {seeds} | " + " | ".join(cells) + " |")
        chance = (results.get("chance") or {}).get(d)
        if chance and all(r in chance for r in [train_region, *targets]):
            cells = [f"{chance[r][m]:.2f}" for r in [train_region, *targets] for m in METRICS]
            cells += [f"{sum(chance[t][m] for t in targets) / len(targets):.2f}" for m in METRICS]
            lines.append("| *chance (random ranking)* | – | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def delta_table(results: dict[str, Any], reference: str = "baseline") -> str:
    """Cross-area mean difference of each config to ``reference`` (points), with a crude noise
    scale: the larger of the two seed standard deviations."""
    ref = results["configs"].get(reference)
    if ref is None:
        return ""
    lines = [
        f"Cross-area mean minus {LABELS.get(reference, reference)} (points); 'noise' = the larger "
        "of the two seed std's",
        "",
        "| config | D→S ΔR@1 (noise) | D→S ΔAP (noise) | S→D ΔR@1 (noise) | S→D ΔAP (noise) |",
        "|---|---|---|---|---|",
    ]
    for config, res in results["configs"].items():
        if config == reference:
            continue
        cells = []
        for d in DIRECTIONS:
            for m in METRICS:
                a, b = res["cross_area"][d][m], ref["cross_area"][d][m]
                if not a["n"] or not b["n"]:
                    cells.append("–")
                    continue
                cells.append(f"{a['mean'] - b['mean']:+.2f} ({max(a['std'], b['std']):.2f})")
        lines.append(f"| {LABELS.get(config, config)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_grid(path: Path, configs: list[str], seeds: list[int], train_region: str,
               targets: list[str]) -> None:  # fmt: skip
    """A ``geolink table`` grid of this study (paths relative to ``DIR/runs``)."""
    import yaml

    from geolink.utils.io import atomic_write_text

    columns = [
        {"name": f"{train_region}→{t} {SHORT[d]}", "set": d} for d in DIRECTIONS for t in targets
    ]
    rows = []
    for config in configs:
        cells = {}
        for d in DIRECTIONS:
            for t in targets:
                cells[f"{train_region}→{t} {SHORT[d]}"] = [
                    f"{run_name(config, s)}/eval/{t}" for s in seeds
                ]
        rows.append({"name": LABELS.get(config, config), "cells": cells})
    grid = {
        "name": "synthetic_study",
        "title": f"Synthetic study (%): trained on '{train_region}', zero-shot on the others",
        "metrics": list(METRICS),
        "protocol": "paper",
        "condition": "clean",
        "columns": columns,
        "rows": rows,
    }
    head = (
        "# Written by scripts/synthetic_study.py: the synthetic analogue of Tables 2, 3 and 5.\n"
        "# Render with: geolink table synthetic_study --runs-root STUDY_DIR/runs\n"
    )
    atomic_write_text(path, head + yaml.safe_dump(grid, sort_keys=False, allow_unicode=True))


def markers(tag: str = "study-tables") -> tuple[str, str]:
    """The lines of a Markdown file between which ``--doc`` puts the tables."""
    return f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"


BEGIN, END = markers()


def splice(text: str, tables: str, tag: str = "study-tables") -> str:
    """Replace what lies between the ``tag`` marker lines of ``text`` by ``tables``."""
    from geolink.errors import ConfigError

    begin, end = markers(tag)
    if begin not in text or end not in text or text.index(begin) > text.index(end):
        raise ConfigError(f"--doc: the file needs the lines {begin} and {end} (in that order)")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{tables.strip()}\n{end}{tail}"


# ---- driver --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="study folder (created; resumable)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps", type=int, default=0, help="train.max_steps_per_epoch (0 = all)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument(
        "--priority",
        nargs="*",
        default=[],
        help="configs that get their later seeds before the other configs do (so that a study "
        "stopped early has every seed of these); every config still runs every seed",
    )
    p.add_argument("--synth-preset", default="demo")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic benchmark")
    p.add_argument("--train-region", default="", help="default: the first region")
    p.add_argument("--checkpoint", default="last.safetensors", choices=["last.safetensors",
                   "best.safetensors"], help="which checkpoint is evaluated")  # fmt: skip
    p.add_argument(
        "--model-overrides", nargs="*", default=MODEL_OVERRIDES, help="shared config overrides"
    )
    p.add_argument("--grid", default="", help="also write a `geolink table` grid YAML here")
    p.add_argument(
        "--doc",
        default="",
        help="also put the tables into this Markdown file, between the lines "
        f"'{BEGIN}' and '{END}' (the rest of the file is kept)",
    )
    p.add_argument("--doc-tag", default="study-tables", help="marker name used with --doc")
    p.add_argument("--json", default="", help="also copy results.json here")
    p.add_argument("--aggregate-only", action="store_true", help="only (re)write the tables")
    p.add_argument(
        "--shard",
        default="0/1",
        help="I/N: train only every N-th run of the plan starting at I, so that N processes "
        "(e.g. OMP_NUM_THREADS=1 each) share one study folder; shards other than 0 wait for "
        "shard 0 to finish synthesis and reconstruction",
    )
    return p.parse_args(argv)


def _plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(config, seed) runs in the order they are trained: every config at the first seed, then
    the later seeds of the ``--priority`` configs, then the later seeds of the others (seed-major),
    so that a study stopped early is as balanced as it can be."""
    first, later = args.seeds[:1], args.seeds[1:]
    prio = [c for c in args.configs if c in set(args.priority)]
    rest = [c for c in args.configs if c not in set(args.priority)]
    plan = [(c, s) for s in first for c in args.configs]
    plan += [(c, s) for s in later for c in prio]
    plan += [(c, s) for s in later for c in rest]
    return plan


def _parse_shard(text: str) -> tuple[int, int]:
    from geolink.errors import ConfigError

    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text}: expected I/N, e.g. 0/2") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard {text}: need 0 <= I < N")
    return i, n


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from geolink.demo import DemoConfig, Stages, _reconstruct, _synthesize
    from geolink.errors import ConfigError, GeoLinkError
    from geolink.utils.io import atomic_write_json

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setting = {
        "synth_preset": args.synth_preset,
        "data_seed": args.data_seed,
        "train_region": args.train_region,
        "epochs": args.epochs,
        "steps": args.steps,
        "checkpoint": args.checkpoint,
        "model_overrides": list(args.model_overrides),
    }
    study_path = out / "study.json"
    try:
        if study_path.is_file():
            old = json.loads(study_path.read_text())
            if old["setting"] != setting:
                raise ConfigError(
                    f"{out} holds a study with other settings ({study_path}): {old['setting']}; "
                    "use another --out"
                )
        atomic_write_json(study_path, {"setting": setting, "configs": CONFIGS})
        cfg = DemoConfig(synth_preset=args.synth_preset, seed=args.data_seed)
        stages = Stages(out)
        data_dir, recon_dir = out / "data", out / "recon"
        shard, n_shards = _parse_shard(args.shard)
        if shard > 0 and not args.aggregate_only:
            while not stages.done("reconstruct"):  # shard 0 makes the data and the clouds
                logger.info("shard %d: waiting for shard 0 to synthesize and reconstruct", shard)
                time.sleep(15)
                stages.refresh()
        stages.run("synthesize", lambda: str(_synthesize(cfg, data_dir)))
        regions = list(json.loads((data_dir / "synth.json").read_text())["regions"])
        train_region = args.train_region or regions[0]
        if train_region not in regions:
            raise ConfigError(f"--train-region {train_region}: not one of {regions}")
        targets = [r for r in regions if r != train_region]
        if not args.aggregate_only:
            stages.run("reconstruct", lambda: _reconstruct(cfg, data_dir, train_region, recon_dir))
            plan = _plan(args)
            for i, (config, seed) in enumerate(plan):
                if i % n_shards != shard:
                    continue
                logger.info("run %d/%d: %s seed %d", i + 1, len(plan), config, seed)
                stages.run(
                    f"run_{run_name(config, seed)}",
                    lambda c=config, s=seed: _train_and_eval(
                        args, c, s, data_dir, recon_dir, train_region, regions
                    ),
                )
                _write_tables(args, out, train_region, targets, stages)
        _write_tables(args, out, train_region, targets, stages)
    except GeoLinkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _write_tables(
    args: argparse.Namespace, out: Path, train_region: str, targets: list[str], stages: Any
) -> None:
    from geolink.utils.io import atomic_write_json, atomic_write_text

    seeds = sorted(set(args.seeds))
    results = aggregate(out / "runs", list(args.configs), seeds, train_region, targets)
    results["setting"] = json.loads((out / "study.json").read_text())["setting"]
    results["train_region"] = train_region
    results["targets"] = targets
    results["seconds"] = stages.seconds()
    chance_path = out / "chance.json"
    if not chance_path.is_file():
        atomic_write_json(chance_path, chance_levels(out / "data", [train_region, *targets]))
    results["chance"] = json.loads(chance_path.read_text())
    results["diagnostics"] = {"losses": loss_diagnostics(out / "runs", list(args.configs), seeds)}
    try:
        results["diagnostics"]["point_features"] = point_feature_spread(out / "recon")
    except Exception as e:  # noqa: BLE001 - a diagnostic must not sink the tables
        logger.warning("point feature spread unavailable: %s", e)
    batch = next(
        (int(o.split("=")[1]) for o in args.model_overrides if o.startswith("train.batch_size=")),
        None,
    )
    results["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
    }
    atomic_write_json(out / "results.json", results)
    md = render_markdown(results, train_region, targets) + "\n" + delta_table(results)
    md += "\n" + diagnostics_markdown(results["diagnostics"], batch)
    atomic_write_text(out / "results.md", md)
    if args.json:
        atomic_write_json(Path(args.json), results)
    if args.doc:
        doc = Path(args.doc)
        atomic_write_text(doc, splice(doc.read_text(encoding="utf-8"), md, args.doc_tag))
    if args.grid:
        write_grid(Path(args.grid), list(args.configs), seeds, train_region, targets)


if __name__ == "__main__":
    sys.exit(main())
