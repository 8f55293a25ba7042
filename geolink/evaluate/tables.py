"""Render the paper's table layouts from run folders (``geolink table``).

A *grid* file (YAML) says which evaluation record fills which cell::

    name: table2                    # output file stem
    title: "Cross-area comparison (%), Drone→Satellite"
    paper: table2                   # optional: published numbers (geolink.evaluate.paper_numbers)
    metrics: [R@1, AP]
    protocol: paper                 # defaults for every cell ...
    condition: clean
    columns:                        # ... overridable per column and per cell
      - {name: "U1652→SUES", set: drone2satellite@avg}
      - {name: "SUES→DUAV", set: drone2satellite}
    rows:
      - name: GeoLink (ours)
        paper_row: GeoLink          # optional: the published row shown alongside
        cells:
          "U1652→SUES": u1652/geolink/eval/sues200             # a run's eval folder or metrics.json
          "SUES→DUAV": [sues/s0/eval/denseuav, sues/s1/eval/denseuav]   # seeds: mean ± std
          # or {runs: [...], set: ..., condition: ..., protocol: ...}

Paths are relative to ``runs_root``. Missing folders, files or records leave the cell empty and
are listed in ``missing``; nothing fails because a run is not there yet.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geolink.errors import ConfigError, DataError
from geolink.evaluate.metrics import mean_std
from geolink.evaluate.paper_numbers import SOURCE, paper_table
from geolink.utils import conf
from geolink.utils.io import atomic_write_json, atomic_write_text

STEP = "tables"  # shipped grids in geolink/configs/tables/


@dataclass
class GridColumn:
    name: str  # required
    set: str | None = None  # defaults: the grid's, else drone2satellite / clean / paper
    condition: str | None = None
    protocol: str | None = None


@dataclass
class GridRow:
    name: str  # required
    paper_row: str | None = None  # the published row shown alongside
    # column name -> a run's eval folder, a list of them (seeds) or
    # {runs: [...], set: ..., condition: ..., protocol: ...}
    cells: dict[str, Any] = field(default_factory=dict)


@dataclass
class Grid:
    metrics: list[str]  # required
    columns: list[GridColumn]  # required
    name: str = ""  # default: the file's stem
    title: str = ""
    paper: str | None = None  # published numbers (geolink.evaluate.paper_numbers)
    protocol: str | None = None
    condition: str | None = None
    set: str | None = None
    rows: list[GridRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


CELL_KEYS = {"runs", "set", "condition", "protocol"}


@dataclass
class Cell:
    """One (row, column) of a table: metric -> (mean, std, n runs)."""

    values: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def shipped_grids() -> dict[str, Path]:
    """Grid files shipped in ``geolink/configs/tables`` by stem."""
    from importlib import resources

    root = resources.files("geolink") / "configs" / STEP
    return {name: Path(str(root / f"{name}.yaml")) for name in conf.preset_names(STEP)}


def load_grid(path_or_name: str | Path) -> dict[str, Any]:
    """Read and validate a grid (a YAML path, or the stem of a shipped grid) against
    :class:`Grid`; returned as plain data."""
    path = Path(path_or_name)
    if not path.is_file():
        shipped = shipped_grids()
        if str(path_or_name) not in shipped:
            raise ConfigError(
                f"grid {path_or_name} is neither a file nor a shipped grid; shipped: "
                f"{', '.join(sorted(shipped))}"
            )
        path = shipped[str(path_or_name)]
    grid = conf.to_dict(conf.load(Grid, f"grid {path}", file=path))
    for key in ("columns", "metrics"):
        if not grid[key]:
            raise ConfigError(f"grid {path}: '{key}' must be a non-empty list")
    names = [str(col["name"]) for col in grid["columns"]]
    for row in grid["rows"]:
        for col_name in row["cells"]:
            if str(col_name) not in names:
                raise ConfigError(
                    f"grid {path} row {row['name']!r}: unknown column {col_name!r}; "
                    f"columns: {', '.join(names)}"
                )
    grid["name"] = grid["name"] or path.stem
    grid["title"] = grid["title"] or grid["name"]
    grid["_path"] = str(path)
    return grid


def _check_keys(d: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(d) - allowed - {"_path"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _cell_spec(spec: Any) -> dict[str, Any]:
    if isinstance(spec, (str, Path)):
        return {"runs": [str(spec)]}
    if isinstance(spec, list):
        return {"runs": [str(s) for s in spec]}
    if isinstance(spec, dict):
        _check_keys(spec, CELL_KEYS, "cell")
        runs = spec.get("runs", [])
        return {**spec, "runs": [str(runs)] if isinstance(runs, str) else [str(r) for r in runs]}
    raise ConfigError(f"a cell must be a path, a list of paths or a mapping; got {spec!r}")


def _find_record(records: list[dict], set_name: str, condition: str, protocol: str) -> dict | None:
    for r in records:
        if (
            r.get("set") == set_name
            and r.get("condition") == condition
            and (r.get("protocol") == protocol)
        ):
            return r
    return None


def _fill_cell(
    spec: dict, column: dict, grid: dict, runs_root: Path, metrics: list[str], cache: dict
) -> Cell:
    set_name = spec.get("set") or column.get("set") or grid.get("set") or "drone2satellite"
    condition = spec.get("condition") or column.get("condition") or grid.get("condition") or "clean"
    protocol = spec.get("protocol") or column.get("protocol") or grid.get("protocol") or "paper"
    cell = Cell(runs=spec["runs"])
    found: list[dict] = []
    for run in spec["runs"]:
        path = runs_root / run
        path = path / "metrics.json" if path.suffix != ".json" else path
        if path not in cache:
            from geolink.evaluate.evaluator import load_records

            try:
                cache[path] = load_records(path) if path.is_file() else None
            except DataError:
                cache[path] = None
        records = cache[path]
        if records is None:
            cell.missing.append(f"{path}: no metrics.json")
            continue
        rec = _find_record(records, set_name, condition, protocol)
        if rec is None:
            cell.missing.append(f"{path}: no record set={set_name} condition={condition} "
                                f"protocol={protocol}")  # fmt: skip
            continue
        found.append(rec)
    if not spec["runs"]:
        cell.missing.append("no run assigned")
    for m in metrics:
        vals = [r["metrics"][m] for r in found if m in r.get("metrics", {})]
        if vals:
            mean, std = mean_std(vals)
            cell.values[m] = (mean, std, len(vals))
        elif found:
            cell.missing.append(f"metric {m} not in the records of {spec['runs']}")
    return cell


def build_table(grid: dict[str, Any], runs_root: str | Path = ".") -> dict[str, Any]:
    """Fill a grid from run folders. Returns a JSON-able dict (see :func:`write_table`)."""
    runs_root = Path(runs_root)
    metrics = [str(m) for m in grid["metrics"]]
    columns = grid["columns"]
    paper = paper_table(grid["paper"]) if grid.get("paper") else None
    cache: dict = {}
    rows, missing = [], []
    for row in grid.get("rows") or []:
        cells = {}
        for col in columns:
            spec = (row.get("cells") or {}).get(col["name"])
            if spec is None:
                cells[col["name"]] = Cell(missing=["no run assigned"])
            else:
                cells[col["name"]] = _fill_cell(
                    _cell_spec(spec), col, grid, runs_root, metrics, cache
                )
            for why in cells[col["name"]].missing:
                missing.append({"row": row["name"], "column": col["name"], "reason": why})
        paper_vals = None
        if paper and row.get("paper_row"):
            if row["paper_row"] not in paper["rows"]:
                raise ConfigError(
                    f"row {row['name']!r}: paper_row {row['paper_row']!r} is not in "
                    f"{grid['paper']}; rows: {', '.join(paper['rows'])}"
                )
            paper_vals = paper["rows"][row["paper_row"]]
        rows.append({"name": row["name"], "cells": cells, "paper": paper_vals})
    return {
        "name": grid["name"],
        "title": grid.get("title", grid["name"]),
        "metrics": metrics,
        "columns": [c["name"] for c in columns],
        "rows": rows,
        "paper": paper,
        "missing": missing,
        "notes": list(grid.get("notes") or []) + list((paper or {}).get("notes") or []),
    }


def _fmt_cell(cell: Cell, m: str) -> str:
    if m not in cell.values:
        return "—"
    mean, std, n = cell.values[m]
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def _paper_value(row_paper: dict | None, col: str, m: str) -> str:
    if not row_paper or col not in row_paper or m not in row_paper[col]:
        return "—"
    return f"{row_paper[col][m]:.2f}"


def to_markdown(table: dict[str, Any]) -> str:
    """Ours per column x metric, then the published block; then the full published table."""
    cols, metrics = table["columns"], table["metrics"]
    head = ["Method"] + [f"{c} {m}" for c in cols for m in metrics]
    has_paper = any(r["paper"] for r in table["rows"])
    if has_paper:
        head += [f"paper: {c} {m}" for c in cols for m in metrics]
    lines = [f"### {table['title']}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]  # fmt: skip
    for r in table["rows"]:
        vals = [_fmt_cell(r["cells"][c], m) for c in cols for m in metrics]
        if has_paper:
            vals += [_paper_value(r["paper"], c, m) for c in cols for m in metrics]
        lines.append("| " + " | ".join([r["name"], *vals]) + " |")
    paper = table.get("paper")
    if paper:
        pcols = paper["columns"]
        lines += ["", f"Published numbers ({SOURCE}): {paper['title']}", "",
                  "| Method | " + " | ".join(f"{c} {m}" for c in pcols for m in paper["metrics"])
                  + " |", "|" + "---|" * (1 + len(pcols) * len(paper["metrics"]))]  # fmt: skip
        for method, vals in paper["rows"].items():
            cells = [_paper_value(vals, c, m) for c in pcols for m in paper["metrics"]]
            lines.append("| " + " | ".join([method, *cells]) + " |")
    for note in table.get("notes") or []:
        lines += ["", f"Note: {note}"]
    if table["missing"]:
        lines += ["", f"Missing cells: {len(table['missing'])} (see {table['name']}.json)"]
    return "\n".join(lines) + "\n"


def to_csv(table: dict[str, Any]) -> str:
    """Long format: ``source,row,column,metric,mean,std,n_runs`` (source = ours | paper)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["source", "row", "column", "metric", "mean", "std", "n_runs"])
    for r in table["rows"]:
        for c in table["columns"]:
            for m in table["metrics"]:
                v = r["cells"][c].values.get(m)
                w.writerow(["ours", r["name"], c, m, *(
                    (f"{v[0]:.4f}", f"{v[1]:.4f}", v[2]) if v else ("", "", 0))])  # fmt: skip
    paper = table.get("paper")
    if paper:
        for method, vals in paper["rows"].items():
            for c, per in vals.items():
                for m, v in per.items():
                    w.writerow(["paper", method, c, m, f"{v:.2f}", "", ""])
    return buf.getvalue()


def to_json(table: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for r in table["rows"]:
        cells = {
            c: {
                "runs": cell.runs,
                "values": {
                    m: {"mean": v[0], "std": v[1], "n": v[2]} for m, v in cell.values.items()
                },
                "missing": cell.missing,
            }
            for c, cell in r["cells"].items()
        }
        rows.append({"name": r["name"], "cells": cells, "paper": r["paper"]})
    return {**table, "rows": rows, "source": SOURCE if table.get("paper") else None}


def write_table(
    grid: str | Path | dict[str, Any], out_dir: str | Path, runs_root: str | Path = "."
) -> dict[str, Any]:
    """Build a table and write ``<name>.md``, ``<name>.csv``, ``<name>.json`` into ``out_dir``.

    Returns the JSON form (with ``missing``: the unfilled cells and why, and ``files``).
    """
    grid = grid if isinstance(grid, dict) else load_grid(grid)
    table = build_table(grid, runs_root)
    out = Path(out_dir)
    stem = str(table["name"])
    md = atomic_write_text(out / f"{stem}.md", to_markdown(table))
    cs = atomic_write_text(out / f"{stem}.csv", to_csv(table))
    data = to_json(table)
    js = atomic_write_json(out / f"{stem}.json", data)
    data["files"] = [str(md), str(cs), str(js)]
    data["markdown"] = md.read_text(encoding="utf-8")
    return data
