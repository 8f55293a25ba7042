"""Frozen-trunk feature cache: a cached step equals the uncached step on the same input."""

import json

import pytest
import torch
from safetensors.torch import load_file

from geolink.errors import ConfigError
from geolink.train.trainer import Trainer, train
from tests.test_train import cfg_for, make_u1652


@pytest.fixture
def data(tmp_path):
    return make_u1652(tmp_path / "u1652", n_loc=6, drones=2, size=48)


def _losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["kind"] == "train"]


@pytest.mark.parametrize(
    "model",
    [
        # a ViT: patch embedding, positional embedding, class token and block 0 frozen
        ["model.image.frozen_blocks=1", "model.image.freeze_embeddings=true"],
        # EfficientNet-Lite0 with its ImageNet weights: stem + 5 stages frozen, BatchNorm inside
        [
            "model.image.backbone=tf_efficientnet_lite0",
            "model.image.pretrained=package",
            "model.image.frozen_blocks=5",
            "model.image.img_size=64",
        ],
    ],
    ids=["vit", "efficientnet_lite0"],
)
def test_cached_training_equals_uncached_training(data, tmp_path, model):
    common = ["model.point.enabled=false", "train.eval_every=0", "train.augment=geometric", *model]
    plain = train(cfg_for(data, "", *common), tmp_path / "plain")
    cached = train(cfg_for(data, "", *common, "train.frozen_cache=true"), tmp_path / "cached")
    assert (cached / "frozen_cache").is_dir()
    torch.testing.assert_close(
        torch.tensor(_losses(cached)), torch.tensor(_losses(plain)), rtol=1e-5, atol=1e-6
    )
    a = load_file(str(plain / "checkpoints/last.safetensors"))
    b = load_file(str(cached / "checkpoints/last.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)


def test_frozen_part_is_really_frozen_and_in_eval_mode(data, tmp_path):
    cfg = cfg_for(
        data,
        "",
        "model.point.enabled=false",
        "model.image.backbone=tf_efficientnet_lite0",
        "model.image.frozen_blocks=5",
        "model.image.img_size=64",
    )
    t = Trainer(cfg, tmp_path / "r")
    bb = t.model.image_encoder.backbone
    t.model.train()
    frozen = bb._frozen_modules(5)
    assert all(not m.training for m in frozen) and bb.model.blocks[5].training
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in bb.model.blocks[5].parameters())


def test_cache_is_reused_and_rebuilt_when_the_images_change(data, tmp_path):
    over = [
        "model.point.enabled=false",
        "train.augment=geometric",
        "train.frozen_cache=true",
        "model.image.frozen_blocks=1",
        "model.image.freeze_embeddings=true",
        f"train.frozen_cache_dir={tmp_path / 'shared'}",
    ]
    Trainer(cfg_for(data, "", *over), tmp_path / "a")
    (file,) = (tmp_path / "shared").iterdir()
    stamp = file.stat().st_mtime_ns
    Trainer(cfg_for(data, "", *over), tmp_path / "b")  # another run, same images: reused
    assert file.stat().st_mtime_ns == stamp
    img = next((data / "train" / "drone").rglob("*.jpg"))
    img.write_bytes(img.read_bytes())  # touched: new mtime -> rebuilt
    Trainer(cfg_for(data, "", *over), tmp_path / "c")
    assert file.stat().st_mtime_ns != stamp


def test_cache_needs_geometric_augmentation_and_a_frozen_trunk(data, tmp_path):
    with pytest.raises(ConfigError, match="train.augment=geometric"):
        Trainer(cfg_for(data, "", "model.point.enabled=false", "train.frozen_cache=true"), tmp_path)
    vit = ["model.point.enabled=false", "train.frozen_cache=true", "train.augment=geometric"]
    with pytest.raises(ConfigError, match="freeze_embeddings=true"):
        Trainer(cfg_for(data, "", *vit, "model.image.frozen_blocks=1"), tmp_path)
    with pytest.raises(ConfigError, match="frozen_blocks > 0"):
        Trainer(
            cfg_for(
                data,
                "",
                "model.point.enabled=false",
                "train.frozen_cache=true",
                "train.augment=geometric",
                "model.image.frozen_blocks=0",
            ),
            tmp_path,
        )


def test_cache_is_shared_by_runs_whose_validation_split_differs(data, tmp_path):
    """The cache covers the training locations before the seeded validation hold-out, so runs
    with other seeds (other held-out locations) reuse one file instead of rebuilding it."""
    over = [
        "model.point.enabled=false",
        "train.augment=geometric",
        "train.frozen_cache=true",
        # pretrained frozen weights: the same in every seed (random ones would differ)
        "model.image.backbone=tf_efficientnet_lite0",
        "model.image.pretrained=package",
        "model.image.frozen_blocks=5",
        "model.image.img_size=64",
        "train.select=val",
        "train.eval_every=1",
        "train.val_fraction=0.34",
        f"train.frozen_cache_dir={tmp_path / 'shared'}",
    ]
    a = Trainer(cfg_for(data, "", *over, "train.seed=0"), tmp_path / "a")
    (file,) = (tmp_path / "shared").iterdir()
    stamp = file.stat().st_mtime_ns
    b = Trainer(cfg_for(data, "", *over, "train.seed=1"), tmp_path / "b")
    held = [{p.location for p in t.pairs} for t in (a, b)]
    assert held[0] != held[1] and a.val_set is not None
    assert file.stat().st_mtime_ns == stamp


def test_validation_reads_the_cached_trunk_and_matches_embed_images(tmp_path, monkeypatch):
    """The validation split is held-out training images: their trunk activations are cached,
    so validation runs only the top; the embeddings equal the decoded-image path."""
    import numpy as np

    import geolink.evaluate.embed as embed_mod

    data = make_u1652(tmp_path / "u", n_loc=12, drones=2, size=48)
    cfg = cfg_for(
        data, "", "model.point.enabled=false", "train.augment=geometric", "train.frozen_cache=true",
        "model.image.backbone=tf_efficientnet_lite0", "model.image.frozen_blocks=5",
        "model.image.img_size=64", "train.val_fraction=0.25", "train.batch_size=4",
    )  # fmt: skip
    t = Trainer(cfg, tmp_path / "r")
    s = t.val_set
    assert s is not None and t.cached
    enc = t.model.image_encoder
    want_q = embed_mod.embed_images(enc, s.queries, 64, 8)
    want_g = embed_mod.embed_images(enc, s.gallery, 64, 8)
    np.testing.assert_allclose(t.frozen.embed(enc, s.queries, "drone", 8, "cpu"), want_q, atol=2e-6)
    np.testing.assert_allclose(
        t.frozen.embed(enc, s.gallery, "satellite", 8, "cpu"), want_g, atol=2e-6
    )

    def no_decoding(*a, **k):
        raise AssertionError("validation decoded images instead of reading the cache")

    monkeypatch.setattr(embed_mod, "embed_images", no_decoding)
    assert 0.0 <= t._validate() <= 100.0
