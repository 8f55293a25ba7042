"""`geolink demo --quick`: the whole pipeline on the tiny preset, then a resume."""

import json
import shlex
from pathlib import Path

import pytest

from geolink.cli.main import build_parser, main
from geolink.config import load_config


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
    html = (out / "report.html").read_text()
    tables = sum(line.startswith("|---") for line in report.splitlines())
    assert html.count("<table>") == tables and '<img alt="t-SNE" src="figures/' in html
    for png in ("contact_sheet", "point_clouds", "loss_curves", "retrieval_geolink"):
        assert (out / "figures" / f"{png}.png").is_file(), png
    assert str(out / "report.md") in capsys.readouterr().out
    # the report's command list is valid CLI, and one of its eval commands reproduces the demo
    block = report.split("```bash\n", 1)[1].split("```", 1)[0]
    cmds = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert [c[1] for c in cmds[:4]] == ["synth", "reconstruct", "train", "train"]
    for cmd in cmds:
        parser, chosen = build_parser(cmd[1:])
        args = parser.parse_args(cmd[1:])
        if chosen == "train":
            load_config(args.preset, args.overrides)
    ev = [c for c in cmds if c[1] == "eval" and "--weather" not in c][-1]
    i = ev.index("--out")
    ev[i + 1] = str(tmp_path / "again")
    assert main(ev[1:]) == 0
    region = ev[ev.index("-o") + 1].split("=")[1]
    run = Path(ev[ev.index("--checkpoint") + 1]).parents[1]
    clean = [
        {k: r[k] for k in ("set", "metrics")}
        for r in json.loads((run / "eval" / region / "metrics.json").read_text())
        if r["condition"] == "clean"
    ]
    again = [
        {k: r[k] for k in ("set", "metrics")}
        for r in json.loads((tmp_path / "again" / "metrics.json").read_text())
    ]
    assert again == clean
    # a second run resumes: every stage is skipped, the report is rewritten
    before = (out / "runs" / "geolink" / "checkpoints" / "best.safetensors").stat().st_mtime_ns
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    after = (out / "runs" / "geolink" / "checkpoints" / "best.safetensors").stat().st_mtime_ns
    assert before == after
    # another config into the same folder is refused, naming the key; --overwrite starts over
    capsys.readouterr()
    assert main(["demo", "--quick", "--out", str(out), "--seed", "1"]) == 2
    assert "seed: 0 -> 1" in capsys.readouterr().err
    assert main(["demo", "--quick", "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert "seed: 1" in (out / "config.yaml").read_text()
    after_overwrite = (out / "runs" / "geolink" / "checkpoints" / "best.safetensors").stat()
    assert after_overwrite.st_mtime_ns != after
