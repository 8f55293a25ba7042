"""`geolink demo --quick`: the whole pipeline on the tiny preset, then a resume."""

import json

import pytest

from geolink.cli.main import main


@pytest.mark.gl
def test_quick_demo_end_to_end_and_resume(tmp_path, capsys):
    pytest.importorskip("moderngl")
    out = tmp_path / "demo"
    try:
        code = main(["demo", "--quick", "--out", str(out)])
    except Exception as e:  # pragma: no cover - only without a GL context
        from geolink.data.synthetic import GLUnavailableError

        if isinstance(e, GLUnavailableError):
            pytest.skip(f"no OpenGL: {e}")
        raise
    assert code == 0
    report = (out / "report.md").read_text()
    stages = json.loads((out / "stages.json").read_text())
    expected = {
        "synthesize",
        "reconstruct",
        "train_baseline",
        "train_geolink",
        "evaluate_baseline",
        "evaluate_geolink",
        "figures",
    }
    assert expected <= {k for k, v in stages.items() if v["status"] == "done"}
    manifest = json.loads((out / "recon" / "manifest.json").read_text())
    assert any(s["status"] == "ok" for s in manifest["scenes"].values())
    for kind in ("baseline", "geolink"):
        assert (out / "runs" / kind / "checkpoints" / "best.safetensors").is_file()
    # both models appear with numbers in the cross-area and weather tables
    assert report.count("| GeoLink |") >= 3 and report.count("| 2D baseline") >= 3
    assert "## Weather robustness" in report and "fog_rain R@1" in report
    assert report.count("| *chance (random ranking)* |") == 2  # the floor under both tables
    for png in ("contact_sheet", "point_clouds", "loss_curves", "retrieval_geolink"):
        assert (out / "figures" / f"{png}.png").is_file(), png
    assert str(out / "report.md") in capsys.readouterr().out
    # a second run resumes: every stage is skipped, the report is rewritten
    before = (out / "runs" / "geolink" / "checkpoints" / "best.safetensors").stat().st_mtime_ns
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    after = (out / "runs" / "geolink" / "checkpoints" / "best.safetensors").stat().st_mtime_ns
    assert before == after
