import re

import pytest

from geolink.config import from_yaml, load_config, preset_names, to_yaml
from geolink.errors import ConfigError


def test_presets_load_and_paper_values():
    assert {"paper", "baseline", "cpu", "test"} <= set(preset_names())
    c = load_config("paper")
    assert c.model.image.backbone == "vit_base_patch14_dinov2" and c.model.image.img_size == 448
    assert c.train.lr == 6e-4 and c.train.min_lr == 1e-4 and c.train.batch_size == 8
    assert c.loss.lambda_sc == 4.0 and c.model.point.experts == 3 and c.loss.club_hidden == 4096
    b = load_config("baseline")  # inherits from paper through _base_
    assert b.model.point.enabled is False and b.train.lr == 6e-4


def test_overrides_are_typed_and_strict():
    c = load_config("test", ["train.lr=0.01", "model.point.experts=7"])
    assert c.train.lr == 0.01 and c.model.point.experts == 7
    with pytest.raises(ConfigError, match="lrr"):
        load_config("test", ["train.lrr=1"])
    with pytest.raises(ConfigError, match="train.lr"):
        load_config("test", ["train.lr=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("test", ["train.lr"])
    with pytest.raises(ConfigError, match="unknown train preset"):
        load_config("nope")


def test_experiment_file_and_roundtrip(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("_base_: test\ntrain:\n  epochs: 3\n")
    c = load_config(file=f, overrides=["train.seed=7"])
    assert c.train.epochs == 3 and c.train.seed == 7 and c.model.image.backbone == "test_vit"
    assert from_yaml(to_yaml(c)) == c
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  imagee: {}\n")
    with pytest.raises(ConfigError, match="imagee"):
        load_config(file=bad)


@pytest.mark.parametrize(
    "override,named",
    [
        ("train.lr=nan", "train.lr=nan"),
        ("train.lr=-1", "train.lr=-1"),
        ("train.epochs=0", "train.epochs=0"),
        ("train.seed=-1", "train.seed=-1"),
        ("data.num_workers=-1", "data.num_workers=-1"),
        ("model.image.img_size=200000", "model.image.img_size=200000"),
        ("model.point.experts=0", "model.point.experts=0"),
        ("model.point.k=0", "model.point.k=0"),
        ("train.grad_clip=-1", "train.grad_clip=-1"),
        ("train.warmup_epochs=-5", "train.warmup_epochs=-5"),
        ("train.device=banana", "train.device='banana'"),
        ("loss.label_smoothing=1.5", "loss.label_smoothing=1.5"),
        ("train.batch_size=1", "train.batch_size=1"),
    ],
)
def test_option_ranges_are_checked_when_the_config_is_built(override, named):
    """#14.16: these values crashed deep inside (26 GB allocation for img_size 200000), ran
    with a NaN learning rate, or exited 0 after an epochs=0 run that wrote nothing."""
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config("test", [override])


def test_every_shipped_preset_is_in_range():
    from geolink.config import preset_names

    for name in preset_names():
        load_config(name)


def test_cuda_without_cuda_is_a_config_error(tmp_path):
    import torch

    from geolink.train.trainer import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")
