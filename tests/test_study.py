"""The synthetic study's aggregation (scripts/synthetic_study.py) on fake metrics.json files."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "synthetic_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("synthetic_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(root: Path, run: str, region: str, d2s: tuple[float, float], s2d: tuple[float, float]):
    def rec(direction, r1, ap, protocol="paper", condition="clean"):
        return {
            "dataset": region,
            "set": direction,
            "direction": direction,
            "condition": condition,
            "protocol": protocol,
            "metrics": {"R@1": r1, "AP": ap, "R@5": 99.0},
        }

    records = [
        # decoys the aggregation must ignore: another protocol and a weather condition
        rec("drone2satellite", -1.0, -1.0, protocol="gallery_all"),
        rec("drone2satellite", -2.0, -2.0, condition="fog_rain"),
        rec("drone2satellite", *d2s),
        rec("satellite2drone", *s2d),
    ]
    path = root / run / "eval" / region / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(records))


def test_aggregate_mean_std(study, tmp_path):
    # baseline, 3 seeds, regions: a (train), b, c (targets)
    vals = {  # seed -> region -> (D→S R@1, AP), (S→D R@1, AP)
        0: {"a": ((90, 91), (80, 81)), "b": ((10, 20), (30, 40)), "c": ((20, 30), (50, 60))},
        1: {"a": ((92, 93), (82, 83)), "b": ((12, 22), (36, 46)), "c": ((30, 40), (50, 60))},
        2: {"a": ((94, 95), (84, 85)), "b": ((14, 24), (30, 40)), "c": ((40, 50), (50, 60))},
    }
    for seed, regions in vals.items():
        for region, (d2s, s2d) in regions.items():
            _write(tmp_path, f"baseline_s{seed}", region, d2s, s2d)
    # geolink: only seed 0, and target c is missing -> no cross-area mean
    _write(tmp_path, "geolink_s0", "a", (50, 50), (50, 50))
    _write(tmp_path, "geolink_s0", "b", (60, 70), (80, 90))

    res = study.aggregate(tmp_path, ["baseline", "geolink"], [0, 1, 2], "a", ["b", "c"])
    base = res["configs"]["baseline"]
    assert base["seeds"] == [0, 1, 2]
    b_r1 = base["cells"]["drone2satellite"]["b"]["R@1"]
    # 10, 12, 14: mean 12, sample std sqrt((4 + 0 + 4) / 2) = 2
    assert b_r1["mean"] == pytest.approx(12.0) and b_r1["std"] == pytest.approx(2.0)
    assert b_r1["n"] == 3 and b_r1["values"] == [10.0, 12.0, 14.0]
    c_r1 = base["cells"]["drone2satellite"]["c"]["R@1"]  # 20, 30, 40 -> 30 ± 10
    assert (c_r1["mean"], c_r1["std"]) == pytest.approx((30.0, 10.0))
    s2d_b_r1 = base["cells"]["satellite2drone"]["b"]["R@1"]  # 30, 36, 30 -> 32 ± sqrt(12)
    assert s2d_b_r1["mean"] == pytest.approx(32.0)
    assert s2d_b_r1["std"] == pytest.approx(math.sqrt(12.0))
    # cross-area mean per seed over targets b, c: (10+20)/2=15, (12+30)/2=21, (14+40)/2=27
    cross = base["cross_area"]["drone2satellite"]["R@1"]
    assert cross["values"] == pytest.approx([15.0, 21.0, 27.0])
    assert (cross["mean"], cross["std"]) == pytest.approx((21.0, 6.0))
    cross_ap = base["cross_area"]["drone2satellite"]["AP"]  # 25, 31, 37 -> 31 ± 6
    assert (cross_ap["mean"], cross_ap["std"]) == pytest.approx((31.0, 6.0))
    # the training region is a same-area reference, not part of the cross-area mean
    same = base["cells"]["drone2satellite"]["a"]["AP"]
    assert (same["mean"], same["std"]) == pytest.approx((93.0, 2.0))

    geo = res["configs"]["geolink"]
    assert geo["seeds"] == [0]
    one = geo["cells"]["satellite2drone"]["b"]["AP"]
    assert (one["mean"], one["std"], one["n"]) == (90.0, 0.0, 1)
    assert geo["cross_area"]["drone2satellite"]["R@1"]["n"] == 0
    assert any("geolink_s1" in m for m in res["missing"])
    assert any("geolink_s0/eval/c" in m for m in res["missing"])

    md = study.render_markdown(res, "a", ["b", "c"])
    assert "12.00 ± 2.00" in md and "21.00 ± 6.00" in md and "90.00 (1 seed)" in md
    delta = study.delta_table(res)
    assert "+L_ga+L_sc+L_rd (GeoLink)" in delta and "| – |" in delta


def test_plan_order_and_grid(study, tmp_path):
    argv = f"--out {tmp_path} --configs baseline mme geolink --priority baseline geolink"
    args = study.parse_args(argv.split())
    assert study._plan(args) == [
        ("baseline", 0), ("mme", 0), ("geolink", 0),
        ("baseline", 1), ("geolink", 1), ("baseline", 2), ("geolink", 2),
        ("mme", 1), ("mme", 2),
    ]  # fmt: skip
    grid_path = tmp_path / "grid.yaml"
    study.write_grid(grid_path, ["baseline", "geolink"], [0, 1], "a", ["b"])
    from geolink.evaluate.tables import build_table, load_grid

    _write(tmp_path / "runs", "baseline_s0", "b", (10, 20), (30, 40))
    _write(tmp_path / "runs", "baseline_s1", "b", (20, 30), (30, 40))
    table = build_table(load_grid(grid_path), tmp_path / "runs")
    base = table["rows"][0]["cells"]["a→b D→S"].values
    assert base["R@1"][0] == pytest.approx(15.0) and base["R@1"][2] == 2  # mean of 10, 20
    assert base["AP"][:2] == pytest.approx((25.0, math.sqrt(50.0)))
    assert not table["rows"][1]["cells"]["a→b S→D"].values  # geolink runs not there


def test_overrides_of_configs(study, tmp_path):
    _, base = study.train_overrides("baseline", 3, tmp_path, "a", tmp_path / "r", 2, 5, [])
    assert "model.point.enabled=false" in base and not any("data.points" in o for o in base)
    assert "train.seed=3" in base and "train.max_steps_per_epoch=5" in base
    preset, ga = study.train_overrides("ga", 0, tmp_path, "a", tmp_path / "r", 2, 0, [])
    assert preset == "cpu" and f"data.points={tmp_path / 'r'}" in ga
    assert "loss.use_sc=false" in ga and "loss.use_rd=false" in ga
    assert not any(o.startswith("loss.use_ga") for o in ga)
    from geolink.config import load_config

    for name in study.CONFIGS:
        preset, over = study.train_overrides(name, 0, tmp_path, "a", tmp_path / "r", 1, 1, [])
        cfg = load_config(preset, over)
        assert cfg.model.point.enabled == (name != "baseline")
        if name == "baseline":  # the 3D terms need the 3D branch; L_sc is off explicitly
            assert not cfg.loss.use_sc
            continue
        full = name.startswith("geolink")
        assert cfg.loss.use_ga == (name == "ga" or full)
        assert cfg.loss.use_sc == (name == "sc" or (full and not name.endswith("nosc")))
        assert cfg.loss.use_rd == (name == "rd" or full)
        assert cfg.model.point.input_norm == ("batch" if "_bn" in name else "none")
        assert cfg.model.point.head == ("linear" if name.endswith("linear") else "mme")


def test_shards_split_the_plan_and_share_the_stage_records(study, tmp_path):
    from geolink.demo import Stages
    from geolink.errors import ConfigError

    assert study._parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "x", "1"):
        with pytest.raises(ConfigError, match="--shard"):
            study._parse_shard(bad)
    a, b = Stages(tmp_path), Stages(tmp_path)  # two processes on one folder
    a.run("run_x_s0", lambda: 1)
    b.run("run_y_s0", lambda: 2)  # b never saw a's record in memory; it must keep it
    assert not b.done("missing")
    fresh = Stages(tmp_path)
    assert fresh.done("run_x_s0") and fresh.done("run_y_s0")
    assert not a.done("run_y_s0")
    a.refresh()
    assert a.done("run_y_s0")


def test_splice_keeps_prose(study):
    doc = f"# Results\nintro\n{study.BEGIN}\nold table\n{study.END}\nreading\n"
    out = study.splice(doc, "| new | table |\n")
    assert out == f"# Results\nintro\n{study.BEGIN}\n| new | table |\n{study.END}\nreading\n"
    from geolink.errors import ConfigError

    with pytest.raises(ConfigError, match="study-tables:begin"):
        study.splice("no markers", "x")
    two = f"{doc}<!-- long:begin -->\n<!-- long:end -->\n"
    assert study.splice(two, "T", "long").endswith("<!-- long:begin -->\nT\n<!-- long:end -->\n")
    assert "old table" in study.splice(two, "T", "long")


def test_chance_levels_match_hand_computed(study, monkeypatch):
    from geolink.data.base import RetrievalSet

    labels = [f"{i:04d}" for i in range(10)]

    class Fake:
        def eval_sets(self, direction):
            return [
                RetrievalSet(
                    "drone2satellite",
                    [Path(f"q{i}.jpg") for i in range(40)],
                    labels * 4,
                    [Path(f"g{i}.jpg") for i in range(10)],
                    labels,
                    query_view="drone",
                    gallery_view="satellite",
                )
            ]

    import geolink.data

    monkeypatch.setattr(geolink.data, "build_dataset", lambda *a, **k: Fake())
    res = study.chance_levels(Path("unused"), ["r"], trials=400, seed=1)["drone2satellite"]["r"]
    # one positive among 10: R@1 = 1/10; trapezoid AP = 1 at rank 0, else 1/(2(r+1)):
    # E[AP] = (1 + (H_10 - 1) / 2) / 10
    h10 = sum(1 / k for k in range(1, 11))
    assert res["R@1"] == pytest.approx(10.0, abs=1.0)
    assert res["AP"] == pytest.approx(100 * (1 + (h10 - 1) / 2) / 10, abs=1.0)
    assert study.chance_levels(Path("unused"), ["r"], trials=2)["satellite2drone"] == {}


def test_loss_diagnostics_last_records(study, tmp_path):
    for seed, tail in ((0, [2.0, 2.2]), (1, [1.0, 1.2])):
        run = tmp_path / f"geolink_s{seed}"
        run.mkdir()
        recs = [{"kind": "train", "nce_dro_sat": 9.0, "nce_dro_pc": 9.0}]  # early: ignored
        recs += [{"kind": "train", "nce_dro_sat": v, "nce_dro_pc": v + 1} for v in tail]
        recs.append({"kind": "epoch", "epoch": 1, "seconds": 1.0})
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    diag = study.loss_diagnostics(tmp_path, ["geolink", "baseline"], [0, 1], last=2)
    # per seed: mean(2.0, 2.2) = 2.1 and mean(1.0, 1.2) = 1.1 -> 1.6 ± sqrt(0.5)
    d2s = diag["geolink"]["nce_dro_sat"]
    assert (d2s["mean"], d2s["std"], d2s["n"]) == pytest.approx((1.6, math.sqrt(0.5), 2))
    assert diag["geolink"]["nce_dro_pc"]["mean"] == pytest.approx(2.6)
    assert "nce_sat_pc" not in diag["geolink"] and diag["baseline"] == {}
    md = study.diagnostics_markdown({"losses": diag}, 8)
    assert "ln(8) = 2.079" in md and "1.600 ± 0.707" in md
