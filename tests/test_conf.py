"""The one config mechanism (geolink/utils/conf.py): presets per step, strict overrides, enums,
the resolved config recorded next to a step's output and compared on resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from geolink.errors import ConfigError
from geolink.utils import conf


class Colour(conf.Choice):
    red = "red"
    blue = "blue"


@dataclass
class Inner:
    size: int = 3
    sides: tuple[float, float] = (1.0, 2.0)


@dataclass
class Schema:
    name: str = "x"
    colour: Colour = Colour.red
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    workers: int = 1

    RUNTIME: ClassVar[tuple[str, ...]] = ("workers",)


def test_overrides_are_typed_strict_and_mixable():
    c = conf.load(Schema, "none", overrides=["inner.size=7", "tags=a,b", "colour=blue"])
    assert c.inner.size == 7 and c.tags == ["a", "b"] and c.colour == "blue"
    assert f"{c.colour}" == "blue" and str(c.colour) == "blue"  # prints as its value
    # a mapping of dotted or nested keys, and a sequence mixing both: later items win
    c = conf.load(
        Schema, "none", overrides=[{"inner": {"size": 2}}, "inner.size=5", {"options.k": 1}]
    )
    assert c.inner.size == 5 and c.options == {"k": 1}
    assert conf.load(Schema, "none", overrides={"inner.sides": "3,4"}).inner.sides == (3.0, 4.0)
    with pytest.raises(ConfigError, match=r"unknown none parameter 'inner.sise'; available: size"):
        conf.load(Schema, "none", overrides=["inner.sise=1"])
    with pytest.raises(ConfigError, match=r"expected one of \[red, blue\]"):
        conf.load(Schema, "none", overrides=["colour=green"])
    with pytest.raises(ConfigError, match="inner.size"):
        conf.load(Schema, "none", overrides=["inner.size=big"])
    with pytest.raises(ConfigError, match="key=value"):
        conf.load(Schema, "none", overrides=["inner.size"])
    with pytest.raises(ConfigError, match="unknown none preset 'p'; available: $"):
        conf.load(Schema, "none", "p")


def test_yaml_file_layers_and_round_trip(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inner: {size: 9}\ncolour: blue\n")
    c = conf.load(Schema, "none", file=f, overrides=["name=y"])
    assert (c.inner.size, c.colour, c.name) == (9, "blue", "y")
    assert conf.parse(Schema, conf.dump(c), "stored") == c
    f.write_text("inner: {colour: blue}\n")
    with pytest.raises(ConfigError, match=f"config file {f}: unknown none parameter"):
        conf.load(Schema, "none", file=f)
    assert conf.dotlist({"a": {"b": 1, "c": ["x", "y"]}, "d": True}) == [
        "a.b=1",
        "a.c=[x,y]",
        "d=true",
    ]
    assert conf.merged(conf.dotlist({"a": {"b": 1}}), {"a.c": 2}) == {"a": {"b": 1, "c": 2}}


def test_record_refuses_another_config_but_not_runtime_keys(tmp_path):
    a = conf.load(Schema, "none")
    path = conf.record(tmp_path, a, "none")
    assert path.name == "config.yaml" and conf.parse(Schema, path.read_text(), "x") == a
    # how the work is run (RUNTIME) does not change the output: resuming is fine
    conf.record(tmp_path, conf.load(Schema, "none", overrides=["workers=4"]), "none")
    other = conf.load(Schema, "none", overrides=["inner.size=4", "tags=[q]"])
    with pytest.raises(ConfigError, match=r"inner.size: 3 -> 4; tags: \[\] -> \['q'\]"):
        conf.record(tmp_path, other, "none")
    conf.record(tmp_path, other, "none", overwrite=True)
    assert conf.parse(Schema, path.read_text(), "x").inner.size == 4


def test_every_shipped_preset_of_every_step_resolves():
    from geolink.config import load_config
    from geolink.data.synthetic.flight import resolve_map_params
    from geolink.data.synthetic.presets import resolve_params
    from geolink.deploy import store
    from geolink.evaluate import config as eval_config
    from geolink.evaluate.tables import load_grid
    from geolink.pipelines.study import load_study
    from geolink.recon import pipeline

    resolvers = {
        "eval": lambda n: eval_config.resolve(preset=n),
        "tables": load_grid,
        "synth": resolve_params,
        "map": resolve_map_params,
        "reconstruct": lambda n: pipeline.resolve(preset=n),
        "index": lambda n: store.resolve(preset=n),
        "train": load_config,
        "study": load_study,
    }
    for step, resolve in resolvers.items():
        names = conf.preset_names(step)
        assert names, step
        for name in names:
            resolve(name)
    from geolink.pipelines.demo import resolve as resolve_demo

    for name in conf.preset_names("demo"):
        resolve_demo(name)
    assert pipeline.resolve(preset="released").groups == 3
    weather = eval_config.resolve(preset="weather")
    assert weather.conditions == ["clean", "fog_rain", "fog_snow", "rain_snow", "wind"]
    assert eval_config.resolve(preset="official").protocols() == ["paper", "official"]
    assert store.resolve(preset="hnsw").params == {"m": 32, "ef_search": 64}


def test_step_configs_check_names_at_load():
    from geolink.deploy import store
    from geolink.pipelines.demo import resolve as resolve_demo
    from geolink.recon import pipeline

    with pytest.raises(ConfigError, match="available: colmap, depth, vggt"):
        pipeline.resolve({"backend": "sfm"})
    with pytest.raises(ConfigError, match=r"expected one of \[contiguous, interleave\]"):
        pipeline.resolve(["group_mode=random"])
    with pytest.raises(ConfigError, match="available: flat, hnsw, ivf"):
        store.resolve({"index_type": "lsh"})
    with pytest.raises(ConfigError, match="unknown train preset 'fast'"):
        resolve_demo("full", {"geolink_preset": "fast"})
    with pytest.raises(ConfigError, match="unknown weather condition"):
        resolve_demo("quick", {"conditions": ["hail"]})
    with pytest.raises(ConfigError, match=r"expected one of \[best, last\]"):
        resolve_demo("quick", ["checkpoint=first"])
    from geolink.evaluate.config import resolve as resolve_eval

    with pytest.raises(ConfigError, match="unknown weather 'hail'"):
        resolve_eval({"conditions": "clean,hail"})
    with pytest.raises(ConfigError, match=r"batch_size=0 \(expected >= 1\)"):
        resolve_eval(["batch_size=0"])
    with pytest.raises(ConfigError, match=r"expected one of \[both, drone2satellite"):
        resolve_eval(["direction=up"])
    # a partial training config is a nested mapping, not strings
    q = resolve_demo("quick", ["train_overrides.train.epochs=3"])
    assert q.train_overrides["train"] == {"epochs": 3, "batch_size": 2}


def test_cli_steps_take_presets_and_write_config(tmp_path, capsys):
    from geolink.cli.main import main

    assert main(["demo", "--preset", "fast", "--out", str(tmp_path / "d")]) == 2
    assert "unknown demo preset 'fast'; available: full, quick" in capsys.readouterr().err
    assert not (tmp_path / "d" / "config.yaml").exists()  # nothing written for a bad config
    assert main(["reconstruct", "--import-colmap", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--preset", "depth", "num_pointz=3"]) == 2  # fmt: skip
    assert "unknown reconstruct parameter 'num_pointz'" in capsys.readouterr().err
    # a bad index option fails before any input is read (the tile folder does not exist)
    assert main(["index", "--onnx", "x.onnx", "--tiles", str(tmp_path / "none"),
                 "--out", str(tmp_path / "i"), "index_type=lsh"]) == 2  # fmt: skip
    assert "unknown index type 'lsh'" in capsys.readouterr().err


def test_pipelines_start_over_only_when_told(tmp_path, capsys):
    from geolink.cli.main import main
    from geolink.pipelines.stages import start_over

    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "stages.json").write_text("{}")
    (tmp_path / "mine.txt").write_text("kept")
    start_over(tmp_path, ("runs", "stages.json", "absent"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    # a sharded study cannot start over: the other shards would lose their work
    argv = ["study", "--config", "demo", "--out", str(tmp_path / "s"), "--shard", "1/2"]
    assert main([*argv, "--overwrite"]) == 2
    assert "one process" in capsys.readouterr().err
