"""Embedding cache and the evaluator on a tiny University-1652-layout folder."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from geolink.data import build_dataset
from geolink.evaluate.embed import cache_key, embed_images, model_fingerprint
from geolink.evaluate.evaluator import average_records, evaluate
from geolink.models.image_encoder import ImageEncoder, ImageEncoderConfig

COLORS = {
    "0001": (220, 30, 30),
    "0002": (30, 200, 40),
    "0003": (40, 60, 230),
    "0004": (200, 200, 30),
}
DISTRACTORS = {"0100": (30, 200, 200), "0101": (120, 120, 120)}


class ColorEncoder(nn.Module):
    """Mean colour of 2x2 cells, L2-normalised: (B, 3, H, W) -> (B, 12). Deterministic."""

    img_size = 32

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, images):
        x = nn.functional.adaptive_avg_pool2d(images, 2).flatten(1) * self.scale
        return nn.functional.normalize(x + 3.0, dim=1)


def _img(path: Path, rgb, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = np.clip(np.array(rgb)[None, None] + rng.normal(0, 8, (32, 32, 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a.astype(np.uint8)).save(path)


def make_u1652(root: Path, n_drone: int = 3) -> Path:
    for i, (loc, rgb) in enumerate({**COLORS, **DISTRACTORS}.items()):
        _img(root / "test" / "gallery_satellite" / loc / f"{loc}.jpg", rgb, i)
        for j in range(n_drone):
            _img(
                root / "test" / "gallery_drone" / loc / f"image-{j + 1:02d}.jpeg", rgb, 100 * i + j
            )
        if loc in COLORS:
            _img(root / "test" / "query_satellite" / loc / f"{loc}.jpg", rgb, i)
            for j in range(n_drone):
                _img(
                    root / "test" / "query_drone" / loc / f"image-{j + 1:02d}.jpeg",
                    rgb,
                    100 * i + j,
                )
    with open(root / "gps.csv", "w") as f:
        f.write("name,lat,lon\n")
        for i, loc in enumerate([*COLORS, *DISTRACTORS]):
            f.write(f"{loc},{30 + i * 0.001},{120 + i * 0.001}\n")
    return root


def test_embed_images_order_cache_and_key(tmp_path):
    root = make_u1652(tmp_path / "u")
    paths = sorted((root / "test" / "gallery_drone").rglob("*.jpeg"))
    enc = ColorEncoder()
    a = embed_images(enc, paths, batch_size=4, cache_dir=tmp_path / "cache", model_key="m")
    assert a.shape == (len(paths), 12)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    # reversed order: same cache entry (sorted key), rows follow the given order
    with torch.no_grad():
        enc.scale.fill_(-1.0)  # a cache hit must not run the (now different) model
    b = embed_images(enc, paths[::-1], batch_size=3, cache_dir=tmp_path / "cache", model_key="m")
    np.testing.assert_array_equal(b, a[::-1])
    assert cache_key("m", paths, 32, None) != cache_key("m", paths, 32, "wind")
    assert cache_key("m", paths, 32, None) != cache_key("other", paths, 32, None)


def test_evaluate_writes_metrics_topk_and_resumes(tmp_path):
    root = make_u1652(tmp_path / "u")
    ds = build_dataset("university1652", root)
    out = tmp_path / "eval"
    res = evaluate(
        ColorEncoder(),
        ds,
        {"conditions": ["clean", "wind"], "protocol": "both", "batch_size": 4, "topk": 3},
        out,
    )
    recs = json.loads((out / "metrics.json").read_text())
    assert recs == res["records"]
    assert len(recs) == 2 * 2 * 2  # sets x conditions x protocols
    by = {(r["set"], r["condition"], r["protocol"]): r for r in recs}
    d2s = by[("drone2satellite", "clean", "paper")]
    assert d2s["metrics"]["R@1"] == 100.0 and d2s["metrics"]["AP"] == 100.0
    assert d2s["metrics"]["SDM@1"] == pytest.approx(100.0) and d2s["metrics"]["MA@5m"] == 100.0
    assert (d2s["n_queries"], d2s["n_gallery"], d2s["n_gallery_total"]) == (12, 4, 6)
    assert by[("drone2satellite", "clean", "official")]["n_gallery"] == 6
    s2d = by[("satellite2drone", "clean", "official")]
    assert s2d["n_queries"] == 4 and s2d["n_gallery"] == 18
    assert s2d["metrics"]["AP"] == 100.0  # all 3 drone views of a location rank first
    with open(out / "topk_drone2satellite.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 * 3 and rows[0]["rank"] == "1"
    assert all(r["correct"] == "1" for r in rows if r["rank"] == "1")
    assert Path(rows[0]["gallery"]).parent.name == rows[0]["query_label"]
    assert (out / "topk_satellite2drone_wind_official.csv").is_file()

    # resume: nothing recomputed (an encoder that would fail is never called)
    class Broken(ColorEncoder):
        def forward(self, images):
            raise AssertionError("recomputed")

    again = evaluate(Broken(), ds, {"conditions": ["clean", "wind"], "protocol": "both"}, out)
    assert len(again["records"]) == 8


def test_average_records_over_heights():
    recs = [
        {
            "dataset": "sues200",
            "set": f"drone2satellite@{h}",
            "direction": "drone2satellite",
            "condition": "clean",
            "protocol": "paper",
            "metrics": {"R@1": r1, "AP": ap},
            "n_queries": 10,
            "n_gallery": 80,
        }
        for h, r1, ap in [
            (150, 80.0, 70.0),
            (200, 90.0, 75.0),
            (250, 95.0, 80.0),
            (300, 99.0, 85.0),
        ]
    ]
    (avg,) = average_records(recs)
    assert avg["set"] == "drone2satellite@avg"
    assert avg["metrics"] == {"AP": 77.5, "R@1": 91.0}
    assert avg["n_queries"] == 40


def test_evaluate_sues200_heights_and_average(tmp_path):
    root = tmp_path / "sues"
    for h in ("150", "200"):
        for i, (loc, rgb) in enumerate({**COLORS, **DISTRACTORS}.items()):
            t = root / "Testing" / h
            _img(t / "gallery_satellite" / loc / "0.png", rgb, i)
            _img(t / "gallery_drone" / loc / "1.jpg", rgb, 10 + i)
            if loc in COLORS:
                _img(t / "query_satellite" / loc / "0.png", rgb, i)
                _img(t / "query_drone" / loc / "1.jpg", rgb, 10 + i)
    ds = build_dataset("sues200", root, heights="150,200")
    res = evaluate(
        ColorEncoder(), ds, {"direction": "drone2satellite", "batch_size": 8}, tmp_path / "ev"
    )
    sets = [r["set"] for r in res["records"]]
    assert sets == ["drone2satellite@150", "drone2satellite@200", "drone2satellite@avg"]
    avg = res["records"][-1]
    assert avg["metrics"]["R@1"] == 100.0 and avg["n_queries"] == 8
    assert avg["averaged"] == ["drone2satellite@150", "drone2satellite@200"]


def _tiny_encoder(seed: int, **cfg) -> ImageEncoder:
    torch.manual_seed(seed)
    conf = dict(backbone="test_vit", img_size=32, frozen_blocks=1, freeze_embeddings=True)
    conf.update(mix_out_channels=8, mix_out_rows=2, **cfg)
    return ImageEncoder(ImageEncoderConfig(**conf)).eval()


def test_trunk_cache_shares_a_frozen_trunk_between_models_with_equal_embeddings(tmp_path):
    root = make_u1652(tmp_path / "u")
    paths = sorted((root / "test" / "gallery_drone").rglob("*.jpeg"))
    trunk_dir = tmp_path / "trunk"
    a, b = _tiny_encoder(0), _tiny_encoder(1)
    # b: a's frozen trunk, its own top (what fine-tuning above a frozen trunk gives)
    b.backbone.model.patch_embed.load_state_dict(a.backbone.model.patch_embed.state_dict())
    b.backbone.model.blocks[0].load_state_dict(a.backbone.model.blocks[0].state_dict())
    b.backbone.model.pos_embed.data.copy_(a.backbone.model.pos_embed.data)
    b.backbone.model.cls_token.data.copy_(a.backbone.model.cls_token.data)
    assert a.backbone.trunk_fingerprint() == b.backbone.trunk_fingerprint()
    for weather in (None, "fog_rain"):
        plain_a = embed_images(a, paths, batch_size=4, weather=weather)
        plain_b = embed_images(b, paths, batch_size=4, weather=weather)
        assert not np.allclose(plain_a, plain_b)  # the tops differ
        np.testing.assert_array_equal(
            embed_images(a, paths, batch_size=4, weather=weather, trunk_cache_dir=trunk_dir),
            plain_a,
        )
        b.backbone.trunk = lambda x: pytest.fail("the shared trunk was recomputed")
        got_b = embed_images(b, paths, batch_size=4, weather=weather, trunk_cache_dir=trunk_dir)
        del b.backbone.trunk
        np.testing.assert_array_equal(got_b, plain_b)
    assert len(list(trunk_dir.glob("trunk_*.npy"))) == 2  # clean + fog_rain


def test_trunk_cache_keys_on_the_trunk_weights_and_skips_unfrozen_trunks(tmp_path):
    root = make_u1652(tmp_path / "u")
    paths = sorted((root / "test" / "gallery_drone").rglob("*.jpeg"))
    trunk_dir = tmp_path / "trunk"
    a, c = _tiny_encoder(0), _tiny_encoder(0)
    with torch.no_grad():
        c.backbone.model.pos_embed.add_(0.5)  # same modules, other positional embedding
    assert a.backbone.trunk_fingerprint() != c.backbone.trunk_fingerprint()
    embed_images(a, paths, batch_size=4, trunk_cache_dir=trunk_dir)
    got = embed_images(c, paths, batch_size=4, trunk_cache_dir=trunk_dir)
    np.testing.assert_array_equal(got, embed_images(c, paths, batch_size=4))
    assert len(list(trunk_dir.glob("trunk_*.npy"))) == 2
    # a trainable positional embedding: the trunk's output is not fixed, nothing is cached
    d = _tiny_encoder(2, freeze_embeddings=False)
    assert d.backbone.trunk_fingerprint() is None
    embed_images(d, paths, batch_size=4, trunk_cache_dir=tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_model_fingerprint_of_a_batchnorm_model():
    """BatchNorm's 0-d num_batches_tracked made hashing fail (evaluate without model_key)."""
    m = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    before = model_fingerprint(m)
    with torch.no_grad():
        m[1].running_mean.add_(1.0)
    assert model_fingerprint(m) != before
