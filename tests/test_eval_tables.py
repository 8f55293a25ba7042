"""``geolink table``: grids filled from run folders, seeds averaged, missing cells listed."""

import csv
import json

import pytest

from geolink.cli.main import main
from geolink.errors import ConfigError
from geolink.evaluate.paper_numbers import PAPER_TABLES
from geolink.evaluate.tables import load_grid, shipped_grids, write_table


def _run(root, rel, records):
    path = root / rel / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))


def _rec(set_name, r1, ap, condition="clean", protocol="paper"):
    return {"dataset": "x", "set": set_name, "direction": set_name.split("@")[0],
            "condition": condition, "protocol": protocol, "metrics": {"R@1": r1, "AP": ap},
            "n_queries": 1, "n_gallery": 1}  # fmt: skip


GRID = {
    "name": "t",
    "title": "test",
    "paper": "table7",
    "metrics": ["R@1", "AP"],
    "columns": [
        {"name": "SUES→DUAV (D→S)", "set": "drone2satellite"},
        {"name": "SUES→U1652 (S→D)", "set": "satellite2drone", "condition": "wind"},
    ],
    "rows": [
        {"name": "ours", "paper_row": "3 experts", "cells": {
            "SUES→DUAV (D→S)": ["s0/ev", "s1/ev"], "SUES→U1652 (S→D)": "s0/ev"}},
        {"name": "absent", "cells": {"SUES→DUAV (D→S)": "nope/ev"}},
    ],
}  # fmt: skip


def test_table_mean_std_paper_block_and_missing(tmp_path):
    _run(tmp_path, "s0/ev", [_rec("drone2satellite", 30.0, 20.0),
                             _rec("satellite2drone", 80.0, 60.0, condition="wind")])  # fmt: skip
    _run(tmp_path, "s1/ev", [_rec("drone2satellite", 34.0, 22.0)])
    data = write_table(GRID, tmp_path / "out", runs_root=tmp_path)
    cell = data["rows"][0]["cells"]["SUES→DUAV (D→S)"]["values"]
    assert cell["R@1"] == {"mean": 32.0, "std": pytest.approx(2.8284271), "n": 2}
    assert cell["AP"]["mean"] == 21.0
    md = (tmp_path / "out" / "t.md").read_text()
    assert (
        "| ours | 32.00 ± 2.83 | 21.00 ± 1.41 | 80.00 | 60.00 | 33.08 | 23.12 | 85.98 | 65.13 |"
        in md
    )
    assert "| 15 experts | 27.16 | 19.57 | 79.67 | 55.25 |" in md  # the published block
    reasons = [(m["row"], m["column"]) for m in data["missing"]]
    assert ("absent", "SUES→DUAV (D→S)") in reasons and ("absent", "SUES→U1652 (S→D)") in reasons
    assert not any(r == "ours" for r, _ in reasons)
    with open(tmp_path / "out" / "t.csv") as f:
        rows = list(csv.DictReader(f))
    ours = [r for r in rows if r["source"] == "ours" and r["row"] == "ours"]
    assert {(r["column"], r["metric"], r["mean"], r["n_runs"]) for r in ours} >= {
        ("SUES→DUAV (D→S)", "R@1", "32.0000", "2")
    }
    assert sum(r["source"] == "paper" for r in rows) == 4 * 2 * 2


def test_missing_record_is_reported(tmp_path):
    _run(tmp_path, "s0/ev", [_rec("drone2satellite", 30.0, 20.0)])
    grid = {**GRID, "rows": [{"name": "r", "cells": {"SUES→U1652 (S→D)": "s0/ev"}}]}
    data = write_table(grid, tmp_path / "o", runs_root=tmp_path)
    (miss,) = [m for m in data["missing"] if m["column"] == "SUES→U1652 (S→D)"]
    assert "set=satellite2drone condition=wind" in miss["reason"]


def test_shipped_grids_load_and_match_paper_columns():
    grids = shipped_grids()
    assert {"table2", "table3", "table4", "table5", "table7", "synthetic"} <= set(grids)
    for name in grids:
        g = load_grid(name)
        if g.get("paper"):
            paper = PAPER_TABLES[g["paper"]]
            assert [c["name"] for c in g["columns"]] == paper["columns"], name
            for row in g["rows"]:
                assert row.get("paper_row") in paper["rows"], (name, row["name"])


def test_grid_errors(tmp_path):
    bad = tmp_path / "g.yaml"
    bad.write_text("columns: [{name: a}]\nmetrics: [R@1]\nrows: [{name: r, cells: {b: x}}]\n")
    with pytest.raises(ConfigError, match="unknown column 'b'"):
        load_grid(bad)
    bad.write_text("columns: [{name: a, sett: x}]\nmetrics: [R@1]\n")
    with pytest.raises(ConfigError, match="sett"):
        load_grid(bad)
    with pytest.raises(ConfigError, match="shipped"):
        load_grid("table99")


def test_paper_numbers_match_the_papers_own_text():
    """Differences the paper states in its text, recomputed from the stored tables."""
    t2, t3, t4 = (PAPER_TABLES[t]["rows"] for t in ("table2", "table3", "table4"))
    assert (t2["QDFL"]["DUAV→U1652"]["R@1"], t2["GeoLink"]["DUAV→U1652"]["AP"]) == (65.83, 72.26)
    assert t2["GeoLink"]["SUES→DUAV"]["R@1"] - t2["QDFL"]["SUES→DUAV"]["R@1"] == pytest.approx(5.43)
    assert t3["GeoLink"]["U1652→SUES"]["R@1"] - t3["CV-Cities"]["U1652→SUES"][
        "R@1"
    ] == pytest.approx(1.57)
    assert t3["GeoLink"]["U1652→SUES"]["AP"] - t3["Game4Loc"]["U1652→SUES"]["AP"] == pytest.approx(
        4.43
    )
    assert t3["CV-Cities"]["DUAV→SUES"]["R@1"] - t3["GeoLink"]["DUAV→SUES"]["R@1"] == pytest.approx(
        0.28
    )
    assert t4["GeoLink"]["fog_rain"]["R@1"] - t4["CV-Cities"]["fog_rain"]["R@1"] == pytest.approx(
        6.67
    )
    assert t4["GeoLink"]["fog_rain"]["AP"] - t4["CV-Cities"]["fog_rain"]["AP"] == pytest.approx(
        5.53
    )
    t5 = PAPER_TABLES["table5"]["rows"]
    gain = t5["Baseline+MME"]["SUES→DUAV (D→S)"]["R@1"] - t5["Baseline"]["SUES→DUAV (D→S)"]["R@1"]
    assert gain == pytest.approx(2.30)


def test_geolink_table_cli(tmp_path, capsys):
    assert (
        main(["table", "table7", "--runs-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    )
    out = capsys.readouterr().out
    assert "8 missing cell(s)" in out and (tmp_path / "o" / "table7.json").is_file()
    assert main(["table", "table7", "--runs-root", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--strict"]) == 1  # fmt: skip
    assert main(["table", "nope"]) == 2
