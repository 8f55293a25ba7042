"""``geolink synth``: generate the synthetic cross-view benchmark (procedural 3D regions)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the synthetic cross-view benchmark")
    p.add_argument(
        "--preset", default=None,
        help="benchmark: tiny | demo | bench (default: demo); with --map: tiny | default "
        "(default: default)",
    )  # fmt: skip
    p.add_argument(
        "--map", action="store_true",
        help="render one contiguous geo-referenced map (map.tif) and drone flights over it "
        "instead of the benchmark (overrides: style=, flights=, half_m=, ...; docs/synthetic.md)",
    )  # fmt: skip
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
    if args.map:
        return _run_map(args)
    from geolink.data.synthetic import generate
    from geolink.data.synthetic.contact_sheet import contact_sheet

    args.preset = args.preset or "demo"
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


def _run_map(args: argparse.Namespace) -> int:
    from geolink.data.synthetic.flight import generate_map
    from geolink.errors import DataError

    if args.workers is not None or args.contact_sheet is not None:
        raise DataError("--workers and --contact-sheet are for the benchmark, not --map")
    preset = args.preset or "default"
    t0 = time.time()
    root = generate_map(
        args.out, preset, args.seed, args.overwrite, **_parse_overrides(args.overrides)
    )
    meta = json.loads((root / "map.json").read_text())
    p, gt = meta["params"], meta["geotransform"]
    print(
        f"map '{preset}' (seed {args.seed}, style {p['style']}) in {root} ({time.time() - t0:.1f} s): "
        f"map.tif {gt['size_px']} x {gt['size_px']} px at {p['m_per_px']} m/px "
        f"({(2 * p['half_m'] / 1000) ** 2:.2f} km²)"
    )
    for fdir in sorted((root / "flights").iterdir()):
        n = len(list((fdir / "frames").glob("*.jpg")))
        print(f"  {fdir.name}: {n} frames, poses in {fdir / 'poses.csv'}")
    return 0
