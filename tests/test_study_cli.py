"""``geolink study``: strict study files, plan and shards, aggregation, verdicts, end to end."""

import json

import pytest

from geolink.cli.main import main
from geolink.errors import ConfigError
from geolink.pipelines.study import load_study, parse_shard, plan
from geolink.pipelines.study_results import mean_std, verdict

TINY = """
name: tiny
synth_preset: tiny
synth_overrides: {}
seeds: [0, 1]
near: [suburb]
overrides: [train.epochs=1, train.batch_size=2, model.image.img_size=56, train.select=last]
runs:
  baseline: {preset: test, points: false, label: 2D baseline}
  geolink: {preset: test, label: GeoLink}
questions:
  - {text: "Does the 3D branch help?", compare: [geolink, baseline]}
"""


def test_shipped_study_parses_and_names_every_run():
    cfg = load_study("demo")
    assert cfg.seeds == [0, 1, 2] and "baseline" in cfg.runs and "experts15" in cfg.runs
    assert len(plan(cfg)) == 3 * len(cfg.runs)
    for q in cfg.questions:
        assert all(r in cfg.runs for r in q.compare)


def test_study_files_are_strict(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("seeds:", "sedes:"))
    with pytest.raises(ConfigError, match="unknown study parameter 'sedes'"):
        load_study(str(bad))
    bad.write_text(TINY.replace("[geolink, baseline]", "[geolink, nope]"))
    with pytest.raises(ConfigError, match="must compare two runs"):
        load_study(str(bad))
    with pytest.raises(ConfigError, match="unknown study 'nope'"):
        load_study("nope")


def test_plan_shards_and_verdicts():
    cfg = load_study("demo")
    shards = [[x for i, x in enumerate(plan(cfg)) if i % 3 == k] for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(plan(cfg))
    assert parse_shard("1/3") == (1, 3)
    with pytest.raises(ConfigError):
        parse_shard("3/3")
    # hand-computed: mean 2, sample std 1
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert verdict([10.0, 11.0, 12.0], [1.0, 2.0, 3.0]) == "higher"
    assert verdict([1.0, 2.0, 3.0], [10.0, 11.0, 12.0]) == "lower"
    assert verdict([1.0, 3.0, 2.0], [2.0, 1.5, 2.5]) == "no measurable difference"


@pytest.mark.gl
def test_study_end_to_end_in_two_shards_and_resume(tmp_path, capsys):
    import timm  # noqa: F401  (torch's compiler stack before any EGL context; see conftest)

    from geolink.data.synthetic import GLUnavailableError  # noqa: F401

    study = tmp_path / "tiny.yaml"
    study.write_text(TINY)
    out = tmp_path / "study"
    try:
        assert main(["study", "--config", str(study), "--out", str(out), "--shard", "0/2"]) == 0
    except GLUnavailableError as e:  # pragma: no cover - machines without EGL
        pytest.skip(f"no OpenGL: {e}")
    assert not (out / "results.md").is_file()  # shard 1 has not run yet
    assert main(["study", "--config", str(study), "--out", str(out), "--shard", "1/2"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["near"] == ["suburb"] and res["far"] == ["downtown"]
    cell = res["runs"]["geolink"]["drone2satellite"]["campus"]["R@1"]
    seeds = [
        next(
            r["metrics"]["R@1"]
            for r in json.loads(
                (out / "runs" / f"geolink_s{s}" / "eval" / "campus" / "metrics.json").read_text()
            )
            if r["direction"] == "drone2satellite" and r["protocol"] == "paper"
        )
        for s in (0, 1)
    ]
    assert cell[:2] == pytest.approx(list(mean_std(seeds))) and cell[2] == 2
    md = (out / "results.md").read_text()
    assert "Does the 3D branch help?" in md and "*chance*" in md
    assert "*pretrained features, no training*" in md
    stamp = (out / "runs" / "geolink_s0" / "checkpoints" / "last.safetensors").stat().st_mtime_ns
    assert main(["study", "--config", str(study), "--out", str(out)]) == 0  # all done: resumes
    assert (
        out / "runs" / "geolink_s0" / "checkpoints" / "last.safetensors"
    ).stat().st_mtime_ns == stamp
    changed = tmp_path / "changed.yaml"
    changed.write_text(TINY.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    assert main(["study", "--config", str(changed), "--out", str(out)]) == 2
    assert "made with another study config (seeds: [0, 1] -> [0, 1, 2])" in capsys.readouterr().err


def test_restrict_keeps_the_questions_between_chosen_runs():
    from geolink.pipelines.study import restrict

    cfg = restrict(load_study("demo"), ["baseline", "geolink"])
    assert list(cfg.runs) == ["baseline", "geolink"]
    assert [q.compare for q in cfg.questions] == [["geolink", "baseline"]]
