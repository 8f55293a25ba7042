"""``geolink eval``: evaluate a checkpoint's 2D encoder (R@K, R@1%, AP, SDM@K) on a dataset.

geolink eval --checkpoint CKPT --dataset NAME --root ROOT [--direction both]
             [--weather fog_rain,fog_snow|paper] [--no-clean] [--protocol paper|official|both]
             [--out DIR] [--batch-size 32] [--device cpu|cuda] [-o key=value ...]

Writes DIR/metrics.json (one record per set x condition x protocol, plus @avg records over
SUES-200 heights) and DIR/topk_<set>[_<condition>].csv. Records already there are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geolink.data import DATASETS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint (R@K, AP, SDM@K) in both directions",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="GeoLink checkpoint (.safetensors)")
    p.add_argument("--dataset", required=True, choices=DATASETS.names(), help="dataset reader")
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--direction", default="both", help="both, drone2satellite or satellite2drone")
    p.add_argument(
        "--weather", default="",
        help="comma-separated weather conditions on drone images; 'paper' = fog_rain,fog_snow,"
        "rain_snow,wind (Table 4)",
    )  # fmt: skip
    p.add_argument("--no-clean", action="store_true", help="only the weather conditions")
    p.add_argument("--protocol", default="paper", choices=("paper", "official", "both"))
    p.add_argument(
        "--out", help="output folder (default: RUN/eval/<dataset>, RUN = the run folder)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if present)")
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    p.add_argument("--topk", type=int, default=10, help="gallery items per query in the CSVs")
    p.add_argument("--backend", default="torch", choices=("torch", "faiss"), help="ranking")
    p.add_argument("--cache-dir", help="embedding cache (default: <out>/embeddings)")
    p.add_argument("--overwrite", action="store_true", help="recompute records already on disk")
    p.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE",
        help="dataset option, e.g. heights=150,200 (sues200) or regions=a,b (synthetic)",
    )  # fmt: skip
    return p


def parse_conditions(weather: str, clean: bool = True) -> list[str]:
    """``"paper"`` -> the four conditions of Table 4; validates every name."""
    from geolink.data.weather import PAPER_CONDITIONS, check_condition
    from geolink.errors import ConfigError

    names: list[str] = []
    for w in (x.strip() for x in weather.split(",") if x.strip()):
        names += list(PAPER_CONDITIONS) if w == "paper" else [check_condition(w)]
    out = (["clean"] if clean else []) + list(dict.fromkeys(names))
    if not out:
        raise ConfigError("--no-clean needs at least one --weather condition")
    return out


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

    import torch

    from geolink.checkpoint import load_image_encoder
    from geolink.cli.data import parse_pairs
    from geolink.data import build_dataset
    from geolink.errors import ConfigError
    from geolink.evaluate.evaluator import evaluate

    for flag, value, low in (("--batch-size", args.batch_size, 1), ("--workers", args.workers, 0),
                             ("--topk", args.topk, 1)):  # fmt: skip
        if value < low:
            raise ConfigError(f"{flag} {value}: must be >= {low}")
    if args.device is not None and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", args.device):
        raise ConfigError(f"--device {args.device!r}: expected cpu, cuda, cuda:N or mps")
    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: this machine has no CUDA device")
    conditions = parse_conditions(args.weather, clean=not args.no_clean)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dataset = build_dataset(args.dataset, args.root, **parse_pairs(args.option))
    encoder, meta = load_image_encoder(args.checkpoint, map_location=device)
    out = Path(args.out) if args.out else default_eval_dir(Path(args.checkpoint), args.dataset)
    protocols = ["paper", "official"] if args.protocol == "both" else [args.protocol]
    result = evaluate(
        encoder, dataset, args.direction, conditions, out, protocols,
        dataset_name=args.dataset, batch_size=args.batch_size, device=device,
        cache_dir=args.cache_dir or out / "embeddings", model_key=meta["sha256"],
        k=args.topk, backend=args.backend, num_workers=args.workers, overwrite=args.overwrite,
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
