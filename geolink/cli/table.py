"""``geolink table``: render a paper table layout from run folders (Markdown + CSV + JSON).

geolink table GRID [--runs-root DIR] --out DIR [--strict]
geolink table --list

GRID is a grid YAML or the name of a shipped one (table2, table3, table4, table5, table7,
synthetic). Cells whose runs are missing stay empty and are listed; --strict exits 1 then.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "table", help="render the paper's tables from run folders", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("grid", nargs="?", help="grid YAML, or a shipped grid name")
    p.add_argument("--runs-root", default=".", help="folder the grid's run paths are relative to")
    p.add_argument("--out", default="tables", help="output folder (default: ./tables)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any cell is missing")
    p.add_argument("--list", action="store_true", help="list the shipped grids")
    return p


def run(args: argparse.Namespace) -> int:
    from geolink.errors import ConfigError
    from geolink.evaluate.tables import shipped_grids, write_table

    if args.list:
        for name, path in sorted(shipped_grids().items()):
            print(f"{name:<12} {path}")
        return 0
    if not args.grid:
        raise ConfigError("give a grid file or a shipped grid name (geolink table --list)")
    data = write_table(args.grid, args.out, args.runs_root)
    print(data["markdown"])
    if data["missing"]:
        print(f"{len(data['missing'])} missing cell(s):")
        for m in data["missing"]:
            print(f"  {m['row']} | {m['column']}: {m['reason']}")
    print("wrote " + ", ".join(data["files"]))
    return 1 if args.strict and data["missing"] else 0
