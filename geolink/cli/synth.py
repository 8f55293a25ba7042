"""``geolink synth``: generate the synthetic cross-view benchmark (procedural 3D regions)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the synthetic cross-view benchmark")
    p.add_argument("--preset", default="demo", help="tiny | demo | bench (default: demo)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="regenerate an existing folder")
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: from the preset)"
    )
    p.add_argument(
        "--contact-sheet", type=Path, default=None, help="also write a contact-sheet PNG here"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        help="parameter overrides key=value, e.g. train_locations=10 drone_mode=fixed_heights",
    )


def _parse_overrides(items: list[str]) -> dict[str, object]:
    from geolink.cli.data import parse_pairs

    # YAML values, as every other subcommand reads them: regions=[campus,suburb] works
    return parse_pairs(items, "synth parameter")


def run(args: argparse.Namespace) -> int:
    from geolink.data.synthetic import generate
    from geolink.data.synthetic.contact_sheet import contact_sheet

    overrides = _parse_overrides(args.overrides)
    if args.workers is not None:
        overrides["workers"] = args.workers
    t0 = time.time()
    root = generate(args.out, args.preset, args.seed, args.overwrite, **overrides)
    meta = json.loads((root / "synth.json").read_text())
    print(
        f"synthetic benchmark '{args.preset}' (seed {args.seed}) in {root} ({time.time() - t0:.1f} s)"
    )
    for region in meta["regions"]:
        n_cam = len(list((root / region / "cameras").glob("*.json")))
        n_drone = sum(1 for _ in (root / region).glob("*/*drone/*/*.jpg"))
        print(f"  {region}: {n_cam} locations, {n_drone} drone images")
    if args.contact_sheet is not None:
        contact_sheet(root, args.contact_sheet)
        print(f"contact sheet: {args.contact_sheet}")
    return 0
