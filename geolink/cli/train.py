"""``geolink train``: train GeoLink or the 2D baseline from a preset + overrides."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train GeoLink or the 2D baseline",
        description="Train from a preset (geolink/configs) or a YAML file, with key=value "
        "overrides, e.g. `geolink train --preset cpu --out runs/x data.root=DIR "
        "data.points=RECON`. Multi-GPU: `torchrun --nproc_per_node N -m geolink.cli.main train ...`.",
    )
    p.add_argument("--preset", default=None, help="config preset (paper, baseline, cpu, ...)")
    p.add_argument("--config", default=None, help="experiment YAML file (may set _base_: PRESET)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument(
        "--resume", action="store_true", help="continue from the run folder's last epoch"
    )
    p.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from geolink.config import load_config
    from geolink.errors import ConfigError
    from geolink.train.trainer import train

    if not args.preset and not args.config:
        raise ConfigError("give --preset NAME or --config FILE")
    cfg = load_config(args.preset, args.overrides, file=args.config)
    out = Path(args.out)
    if (out / "checkpoints" / "last.safetensors").exists() and not args.resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or pick --out")
    run_dir = train(cfg, out, resume=args.resume)
    print(f"run folder: {run_dir}")
    print(f"checkpoints: {run_dir / 'checkpoints' / 'best.safetensors'} (best), last.safetensors")
    return 0
