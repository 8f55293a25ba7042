"""A study's results: per-run aggregates over seeds, verdicts, ``results.json`` and
``results.md``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from geolink.evaluate.metrics import mean_std
from geolink.pipelines.study import DIRECTIONS, SHORT, StudyConfig
from geolink.utils.io import atomic_write_json, atomic_write_text

# ---- aggregation ---------------------------------------------------------------------------


def _metric(run: Path, region: str, direction: str) -> dict | None:
    from geolink.pipelines.report import pick_metric, read_records

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
    from geolink.pipelines.report import chance_levels

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
