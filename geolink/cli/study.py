"""``geolink study``: the ablation study (Table 5, Figure 7a, Table 7) on the synthetic benchmark."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="the multi-seed ablation study on the synthetic benchmark",
        description="Train every run of a study (a YAML file; shipped: geolink/configs/study) "
        "for each seed, evaluate it on every region in both directions, and write results.md "
        "and results.json with mean ± std and one verdict per question. Resumable; split it "
        "across processes with --shard I/N (same --out).",
    )
    p.add_argument("--config", default="demo", help="a shipped study name or a YAML file")
    p.add_argument("--out", help="study folder (required unless --list)")
    p.add_argument("--shard", default="0/1", help="this process's share I/N (default 0/1)")
    p.add_argument("--only", nargs="+", default=None, help="run only these runs of the study")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="override the seeds")
    p.add_argument("--list", action="store_true", help="print the plan and exit")
    p.add_argument(
        "--overwrite", action="store_true",
        help="remove a previous study's outputs in --out and start over (one process only)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from geolink.pipelines.study import load_study, parse_shard, plan, run_study

    cfg = load_study(args.config)
    if args.seeds:
        cfg = replace(cfg, seeds=list(args.seeds))
    shard = parse_shard(args.shard)
    if args.list:
        for i, (name, seed) in enumerate(plan(cfg, args.only)):
            mark = "*" if i % shard[1] == shard[0] else " "
            spec = cfg.runs[name]
            print(f"{mark} {name}_s{seed}: --preset {spec.preset} {' '.join(spec.overrides)}")
        return 0
    if not args.out:
        from geolink.errors import ConfigError

        raise ConfigError("geolink study needs --out DIR (the study folder)")
    path = run_study(cfg, args.out, shard, args.only, overwrite=args.overwrite)
    print(f"study results: {path.resolve()}" if path.is_file() else "study: shard done")
    return 0
