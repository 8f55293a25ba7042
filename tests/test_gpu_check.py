"""The GPU acceptance script's CPU dry run: every section runs the real code paths at toy sizes."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_dry_run_of_every_section(gpu_check, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["environment"]["dry_run"] is True
    rows = report["rows"]
    assert not [r for r in rows if r.get("ok") is False]
    sections = {r["section"] for r in rows}
    assert sections == set(gpu_check.SECTIONS)
    enc = [r for r in rows if r["section"] == "encoder" and "images_per_s" in r]
    assert {(r["dtype"], r["batch"]) for r in enc} == {
        (d, b) for d in ("bf16", "fp32") for b in (2, 4)
    }
    assert all(r["images_per_s"] > 0 and r["finite"] for r in enc)
    crash = [r for r in rows if r["section"] == "crash" and "variant" in r]
    assert len(crash) == 8 and all(r["finite"] for r in crash)
    largest = [r for r in rows if r.get("largest")]
    assert len(largest) == 1 and largest[0]["batch"] >= 2
    ranking = [r for r in rows if r["section"] == "ranking" and "metrics" in r]
    assert {r["problem"] for r in ranking} == {"u1652_d2s", "u1652_s2d"}
    assert all(0 < r["metrics"]["R@1"] < 100 for r in ranking)  # not a trivial problem
    text = capsys.readouterr().out
    assert "DRY RUN on the CPU" in text and "| check | setting | result |" in text


def test_a_failing_section_is_reported_and_fails_the_run(gpu_check, tmp_path, monkeypatch):
    def boom(check):
        raise RuntimeError("bf16 matmul exploded")

    monkeypatch.setattr(gpu_check, "check_ranking", boom)
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--dry-run", "--only", "ranking", "--out", str(out)]) == 1
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["ok"] is False and "bf16 matmul exploded" in rows[0]["result"]


def test_crash_check_reports_non_finite_losses(gpu_check, monkeypatch):
    from geolink.train.trainer import Trainer

    monkeypatch.setattr(Trainer, "step", lambda self, batch: {"loss": float("nan")})
    check = gpu_check.Check(dry=True, device=torch.device("cpu"))
    gpu_check.check_crash(check, steps=2)
    assert all(r["ok"] is False and "NON-FINITE" in r["result"] for r in check.rows)


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H200", 989.5),
        ("NVIDIA H200 NVL", 835.0),
        ("NVIDIA H100 80GB HBM3", 989.5),
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),
    ],
)
def test_roofline_lookup(gpu_check, name, tflops):
    assert gpu_check.gpu_roofline(name)[0] == tflops


def test_trainer_without_data_needs_point_features_when_the_3d_branch_is_on():
    from geolink.config import load_config
    from geolink.errors import ConfigError
    from geolink.train.trainer import Trainer

    cfg = load_config("test", ["train.device=cpu"])
    with pytest.raises(ConfigError, match="point_features"):
        Trainer.without_data(cfg)
