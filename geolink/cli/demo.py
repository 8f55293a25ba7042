"""``geolink demo``: the synthetic benchmark end to end on a CPU, ending in a report."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the synthetic benchmark end to end, with a report",
        description="Synthesize four regions (a training region, a near and two far targets) "
        "-> reconstruct point clouds (depth fusion) -> train the 2D baseline and GeoLink on one "
        "region from ImageNet-pretrained EfficientNet-Lite0 weights -> evaluate zero-shot on the "
        "others (both directions; four weather conditions on the near target), next to chance "
        "and the untrained encoder -> report.md + report.html. Re-running resumes finished "
        "stages.",
    )
    p.add_argument("--out", default="geolink-demo", help="output folder (default: ./geolink-demo)")
    p.add_argument(
        "--quick", action="store_true", help="the same pipeline on the tiny preset (~1-2 min)"
    )
    p.add_argument(
        "--preset", help="named demo config in geolink/configs/demo (full, quick; default full)"
    )
    p.add_argument("--seed", type=int, help="random seed of the data and the models (default 0)")
    p.add_argument(
        "--overwrite", action="store_true",
        help="remove a previous demo's outputs in --out and start over (another config included)",
    )  # fmt: skip
    p.add_argument(
        "overrides", nargs="*",
        help="demo options key=value (DemoConfig), e.g. train_overrides.train.epochs=3",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import time

    from geolink.cli.data import parse_pairs
    from geolink.errors import ConfigError
    from geolink.pipelines.demo import resolve, run_demo

    if args.quick and args.preset not in (None, "quick"):
        raise ConfigError("--quick is --preset quick; give one of them")
    over = parse_pairs(args.overrides, "demo option")
    if args.seed is not None:
        over["seed"] = args.seed
    cfg = resolve("quick" if args.quick else (args.preset or "full"), over)
    t0 = time.perf_counter()
    report = run_demo(args.out, cfg=cfg, overwrite=args.overwrite)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    print(f"report: {report.resolve()}")
    return 0
