"""The paper-experiment path through the CLI on the synthetic benchmark:
``geolink reconstruct`` -> ``geolink train`` (2D baseline and GeoLink) -> ``geolink eval`` on an
unseen region -> ``geolink table`` in the Table 2/3 (cross-area D->S and S->D columns) and
Table 5 (one row per configuration) layouts."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from geolink.cli.main import main


def _cli(capsys, *args: str) -> str:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def test_train_eval_table_on_synthetic(synth_tiny, tmp_path, capsys):
    regions = json.loads((synth_tiny / "synth.json").read_text())["regions"]
    source, target = list(regions)[:2]
    recon = tmp_path / "recon"
    _cli(capsys, "reconstruct", "--dataset", "synthetic", "--root", synth_tiny,
         "--backend", "depth", "--out", recon, "--num-points", "256",
         "-o", f"regions=[{source}]")  # fmt: skip
    runs = tmp_path / "runs"
    rows = {"2D baseline": ("baseline", ["model.point.enabled=false", "loss.use_sc=false"]),
            "Baseline+MME (L_cc)": ("mme", ["loss.use_sc=false", "loss.use_rd=false",
                                            "loss.use_ga=false", f"data.points={recon}"]),
            "GeoLink": ("geolink", [f"data.points={recon}"])}  # fmt: skip
    for run, extra in rows.values():
        _cli(capsys, "train", "--preset", "test", "--out", runs / run,
             "data.dataset=synthetic", f"data.root={synth_tiny}",
             f"data.options.regions=[{source}]", "train.epochs=1", "train.batch_size=2",
             "model.point.num_points=256", *extra)  # fmt: skip
        _cli(capsys, "eval", "--checkpoint", runs / run / "checkpoints" / "last.safetensors",
             "--dataset", "synthetic", "--root", synth_tiny, "-o", f"regions=[{target}]",
             "--out", runs / run / "eval" / target)  # fmt: skip
        assert (runs / run / "eval" / target / "metrics.json").is_file()

    d2s, s2d = f"{source}→{target} D→S", f"{source}→{target} S→D"
    grid = {
        "name": "synthetic_cli",
        "title": "cross-region (%)",
        "metrics": ["R@1", "AP"],
        "columns": [
            {"name": d2s, "set": "drone2satellite"},
            {"name": s2d, "set": "satellite2drone"},
        ],  # fmt: skip
        "rows": [
            {"name": name, "cells": {c: [f"{run}/eval/{target}"] for c in (d2s, s2d)}}
            for name, (run, _) in rows.items()
        ],
    }
    grid_path = tmp_path / "grid.yaml"
    grid_path.write_text(yaml.safe_dump(grid, allow_unicode=True))
    out = _cli(capsys, "table", grid_path, "--runs-root", runs, "--out", tmp_path / "t", "--strict")
    assert "missing" not in out or "0 missing" in out
    md = (tmp_path / "t" / "synthetic_cli.md").read_text()
    for name in rows:
        assert name in md
    assert d2s in md and s2d in md
    with open(tmp_path / "t" / "synthetic_cli.csv", newline="") as f:
        table = list(csv.DictReader(f))  # long format: source,row,column,metric,mean,std,n_runs
    # every cell holds the value of that run's metrics.json
    for name, (run, _) in rows.items():
        metrics = json.loads((runs / run / "eval" / target / "metrics.json").read_text())
        cell = [r for r in table if (r["source"], r["row"], r["column"], r["metric"]) ==
                ("ours", name, d2s, "R@1")]  # fmt: skip
        assert len(cell) == 1 and int(cell[0]["n_runs"]) == 1
        assert float(cell[0]["mean"]) == pytest.approx(_d2s_r1(metrics))


def _d2s_r1(metrics: dict) -> float:
    """R@1 of drone->satellite, clean, paper protocol, from a ``geolink eval`` metrics.json."""
    for rec in metrics:
        if (rec["set"], rec["condition"], rec["protocol"]) == ("drone2satellite", "clean", "paper"):
            return rec["metrics"]["R@1"]
    raise AssertionError(f"no clean paper drone2satellite record in {metrics}")
