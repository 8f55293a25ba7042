"""``geolink data``: inspect datasets and prepare weather copies.

geolink data summary DATASET ROOT [--json] [--check-images header|decode|none]
                     [--skip-corrupt] [-o key=value ...]
geolink data weather CONDITION SRC DST [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("data", help="inspect datasets (summary)", description=__doc__)
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    s = sub.add_parser("summary", help="counts per split/folder and layout problems")
    s.add_argument("dataset", help="university1652, sues200, denseuav, folder or synthetic")
    s.add_argument("root", help="dataset root folder")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument(
        "--check-images",
        choices=("none", "header", "decode"),
        default="header",
        help="open every image (header, default), decode every image (slow), or skip the check",
    )
    s.add_argument(
        "--skip-corrupt", action="store_true", help="list unreadable images instead of stopping"
    )
    s.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE",
        help="dataset option, e.g. heights=150,200 (sues200) or regions=a,b (synthetic)",
    )  # fmt: skip

    w = sub.add_parser("weather", help="write a weather condition applied to drone images")
    w.add_argument(
        "condition", help="fog_rain, fog_snow, rain_snow, wind, dark, fog, rain, snow, light"
    )
    w.add_argument("src", help="folder of drone images (searched recursively)")
    w.add_argument("dst", help="output folder (same relative paths)")
    w.add_argument("--overwrite", action="store_true", help="redo images already written")
    return parser


def parse_pairs(items: list[str], what: str = "dataset option") -> dict:
    """``key=value`` strings -> dict; values are read as YAML (``regions=[a,b]``, ``stride=4``,
    ``flag=true``), falling back to the plain string."""
    import yaml

    from geolink.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} '{item}' must look like key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value.strip()
    return out


def step_overrides(flags: dict, items: list[str], what: str) -> dict:
    """A step's overrides from its CLI: the flags that were given (not None), then the trailing
    ``key=value`` items (which win)."""
    over = {k: v for k, v in flags.items() if v is not None}
    over.update(parse_pairs(items, what))
    return over


def format_summary(info: dict) -> str:
    """Human-readable table of :meth:`CrossViewDataset.summary` output."""
    lines = [
        f"{info['dataset']} at {info['root']}",
        f"{'split':<18} {'folder':<22} {'locations':>9} {'images':>9}",
    ]
    for split, folders in info["splits"].items():
        for folder, c in folders.items():
            lines.append(f"{split:<18} {folder:<22} {c['locations']:>9} {c['images']:>9}")
    lines.append(f"layout complete: {'yes' if info['complete'] else 'no'}")
    lines += [f"  problem: {p}" for p in info["problems"]]
    corrupt = info.get("corrupt", [])
    if corrupt:
        lines.append(f"{len(corrupt)} unreadable image(s) skipped:")
        lines += [f"  {c['path']}: {c['error']}" for c in corrupt]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.data_command == "weather":
        from geolink.data.weather import write_weather

        out = write_weather(args.src, args.dst, args.condition, overwrite=args.overwrite)
        print(f"wrote {args.condition} images to {out}")
        return 0

    from geolink.data import build_dataset

    dataset = build_dataset(args.dataset, args.root, **parse_pairs(args.option))
    info = dataset.summary(check_images=args.check_images, skip_corrupt=args.skip_corrupt)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
    else:
        print(format_summary(info))
    # a tree with layout problems or unreadable images is not usable as is: exit status 1
    bad = len(info["problems"]) + len(info.get("corrupt") or [])
    if bad:
        print(f"geolink data summary: {bad} problem(s) found", file=sys.stderr)
    return 1 if bad else 0
