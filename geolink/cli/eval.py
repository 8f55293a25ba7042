"""``geolink eval``: evaluate a checkpoint's 2D encoder (R@K, R@1%, AP, SDM@K) on a dataset.

geolink eval --checkpoint CKPT --dataset NAME --root ROOT [--preset paper|weather|official]
             [--direction both] [--weather fog_rain,fog_snow|paper] [--no-clean]
             [--protocol paper|official|both] [--out DIR] [--batch-size 32]
             [--device cpu|cuda] [-o key=value ...] [key=value ...]

Options: the schema (geolink.evaluate.config.EvalConfig), then --preset, then the flags and
key=value overrides.

Writes DIR/metrics.json (one record per set x condition x protocol, plus @avg records over
SUES-200 heights) and DIR/topk_<set>[_<condition>].csv. Records already there are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geolink.data import DATASETS
from geolink.evaluate.config import Direction, Protocol, Ranking


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint (R@K, AP, SDM@K) in both directions",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="GeoLink checkpoint (.safetensors)")
    p.add_argument("--dataset", required=True, choices=DATASETS.names(), help="dataset reader")
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--preset", help="named evaluation options: paper (default), weather, official")
    p.add_argument(
        "--direction", choices=[d.value for d in Direction],
        help="both (default), drone2satellite or satellite2drone",
    )  # fmt: skip
    p.add_argument(
        "--weather", default="",
        help="comma-separated weather conditions on drone images; 'paper' = fog_rain,fog_snow,"
        "rain_snow,wind (Table 4)",
    )  # fmt: skip
    p.add_argument("--no-clean", action="store_true", help="only the weather conditions")
    p.add_argument("--protocol", choices=[x.value for x in Protocol], help="default: paper")
    p.add_argument(
        "--out", help="output folder (default: RUN/eval/<dataset>, RUN = the run folder)"
    )
    p.add_argument("--batch-size", type=int, help="images per encoder call (default 32)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if present)")
    p.add_argument("--workers", type=int, help="data-loader worker processes (default 0)")
    p.add_argument("--topk", type=int, help="gallery items per query in the CSVs (default 10)")
    p.add_argument("--backend", choices=[x.value for x in Ranking], help="ranking (default torch)")
    p.add_argument("--cache-dir", help="embedding cache (default: <out>/embeddings)")
    p.add_argument("--overwrite", action="store_true", help="recompute records already on disk")
    p.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE",
        help="dataset option, e.g. heights=150,200 (sues200) or regions=a,b (synthetic)",
    )  # fmt: skip
    p.add_argument("overrides", nargs="*", help="evaluation options key=value (EvalConfig)")
    return p


def _conditions(weather: str | None, no_clean: bool) -> list[str] | None:
    """The --weather / --no-clean flags as the config's condition list (None: not given)."""
    names = [w.strip() for w in (weather or "").split(",") if w.strip()]
    if not names and not no_clean:
        return None
    return ([] if no_clean else ["clean"]) + names


def format_records(records: list[dict]) -> str:
    keys = ["R@1", "R@5", "R@10", "R@1%", "AP", "SDM@1"]
    lines = [
        f"{'set':<26} {'condition':<10} {'protocol':<9} {'Nq':>6} {'Ng':>6} "
        + " ".join(f"{k:>7}" for k in keys)
    ]
    for r in records:
        vals = " ".join(
            f"{r['metrics'][k]:7.2f}" if k in r["metrics"] else f"{'-':>7}" for k in keys
        )
        lines.append(
            f"{r['set']:<26} {r['condition']:<10} {r['protocol']:<9} {r['n_queries']:>6} "
            f"{r['n_gallery']:>6} {vals}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import re
    from dataclasses import replace

    import torch

    from geolink.checkpoint import load_image_encoder
    from geolink.cli.data import parse_pairs, step_overrides
    from geolink.data import build_dataset
    from geolink.errors import ConfigError
    from geolink.evaluate.config import resolve
    from geolink.evaluate.evaluator import evaluate

    flags = {
        "direction": args.direction,
        "conditions": _conditions(args.weather, args.no_clean),
        "protocol": args.protocol,
        "batch_size": args.batch_size,
        "device": args.device,
        "workers": args.workers,
        "topk": args.topk,
        "backend": args.backend,
    }
    over = step_overrides(flags, args.overrides, "evaluation option")
    cfg = resolve(over, args.preset)
    if cfg.device is not None and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", cfg.device):
        raise ConfigError(f"--device {cfg.device!r}: expected cpu, cuda, cuda:N or mps")
    if cfg.device and cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {cfg.device}: this machine has no CUDA device")
    cfg = replace(cfg, device=cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dataset = build_dataset(args.dataset, args.root, **parse_pairs(args.option))
    encoder, meta = load_image_encoder(args.checkpoint, map_location=cfg.device)
    out = Path(args.out) if args.out else default_eval_dir(Path(args.checkpoint), args.dataset)
    result = evaluate(
        encoder, dataset, cfg, out, dataset_name=args.dataset,
        cache_dir=args.cache_dir or out / "embeddings", model_key=meta["sha256"],
        overwrite=args.overwrite,
    )  # fmt: skip
    print(format_records(result["records"]))
    print(f"\nwrote {result['metrics_path']}")
    return 0


def default_eval_dir(checkpoint: Path, dataset: str) -> Path:
    """``RUN/eval/<dataset>``, the one convention for evaluation folders (the demo and the study
    write ``RUN/eval/<region>``); RUN is the run folder a ``RUN/checkpoints/*.safetensors`` sits in,
    else the checkpoint's own folder."""
    parent = checkpoint.resolve().parent
    run = parent.parent if parent.name == "checkpoints" else parent
    return run / "eval" / dataset
