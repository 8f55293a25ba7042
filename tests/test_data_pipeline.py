"""Transforms, torch datasets and the distinct-location batch sampler."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from geolink.data.base import Pair
from geolink.data.samplers import DistinctLocationBatchSampler
from geolink.data.torch_datasets import ImageListDataset, PairDataset
from geolink.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transforms, train_transforms
from geolink.data.weather import apply_weather
from geolink.errors import ConfigError, DataError


def _write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path


def _gradient(h: int = 40, w: int = 40) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    return np.stack([x, y, 255 - x], -1).astype(np.uint8)


# --- transforms ------------------------------------------------------------------------------
def test_eval_transform_is_resize_and_imagenet_normalisation():
    img = np.full((30, 50, 3), (255, 0, 128), np.uint8)
    out = eval_transforms(16)(image=img)["image"]
    assert isinstance(out, torch.Tensor) and out.shape == (3, 16, 16) and out.dtype == torch.float32
    expected = [
        (v / 255.0 - m) / s
        for v, m, s in zip((255, 0, 128), IMAGENET_MEAN, IMAGENET_STD, strict=True)
    ]
    assert out.mean(dim=(1, 2)).tolist() == pytest.approx(expected, abs=1e-5)
    again = eval_transforms(16)(image=img)["image"]
    assert torch.equal(out, again)


def test_train_transforms_shapes_and_errors():
    img = _gradient(48, 64)
    for view in ("drone", "satellite"):
        t = train_transforms(32, view)
        assert t(image=img)["image"].shape == (3, 32, 32)
    names = [type(t).__name__ for t in train_transforms(32, "satellite").transforms]
    assert "RandomRotate90" in names
    assert "RandomRotate90" not in [
        type(t).__name__ for t in train_transforms(32, "drone").transforms
    ]
    with pytest.raises(ConfigError, match="unknown view"):
        train_transforms(32, "street")
    with pytest.raises(ConfigError, match="img_size"):
        eval_transforms(0)


# --- PairDataset -------------------------------------------------------------------------------
def _pairs(tmp_path: Path, n_loc: int = 4, per_loc: int = 3) -> list[Pair]:
    pairs = []
    for loc in range(n_loc):
        sat = _write(tmp_path / f"sat/{loc}/{loc}.png", np.roll(_gradient(), loc * 5, axis=1))
        for k in range(per_loc):
            drone = _write(tmp_path / f"drone/{loc}/{k}.png", np.roll(_gradient(), k * 3, axis=0))
            pairs.append(Pair(drone, sat, f"{loc:04d}", loc, f"{loc:04d}"))
    return pairs


def _identity_like(size: int):
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    return A.Compose([A.Resize(size, size), ToTensorV2()])


def test_pair_dataset_flips_both_views_together(tmp_path):
    pairs = _pairs(tmp_path, 2, 1)
    plain = PairDataset(
        pairs,
        drone_transform=_identity_like(40),
        satellite_transform=_identity_like(40),
        flip_p=0.0,
    )
    flip = PairDataset(
        pairs,
        drone_transform=_identity_like(40),
        satellite_transform=_identity_like(40),
        flip_p=1.0,
    )
    a, b = plain[1], flip[1]
    assert torch.equal(b["drone"], a["drone"].flip(-1))
    assert torch.equal(b["satellite"], a["satellite"].flip(-1))
    assert (a["label"], a["index"], a["scene"]) == (1, 1, "0001")
    # with p = 0.5 the two views always agree: either both flipped or neither
    half = PairDataset(
        pairs,
        drone_transform=_identity_like(40),
        satellite_transform=_identity_like(40),
        flip_p=0.5,
    )
    states = set()
    for epoch in range(12):
        half.set_epoch(epoch)
        s = half[0]
        d_flipped = torch.equal(s["drone"], flip[0]["drone"])
        s_flipped = torch.equal(s["satellite"], flip[0]["satellite"])
        assert d_flipped == s_flipped
        states.add(d_flipped)
    assert states == {True, False}


def test_pair_dataset_deterministic_per_seed_epoch_index(tmp_path):
    pairs = _pairs(tmp_path)
    ds = PairDataset(pairs, img_size=32, seed=3)
    x = ds[5]
    assert x["drone"].shape == x["satellite"].shape == (3, 32, 32)
    assert torch.equal(ds[5]["satellite"], x["satellite"])  # same (seed, epoch, index)
    ds.set_epoch(1)
    other = [not torch.equal(ds[i]["satellite"], PairDataset(pairs, img_size=32, seed=3)[i]["satellite"])
             for i in range(len(pairs))]  # fmt: skip
    assert any(other)  # a new epoch draws new augmentations
    ds.set_epoch(0)
    workers = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    single = DataLoader(ds, batch_size=4, num_workers=0, shuffle=False)
    for a, b in zip(workers, single, strict=True):
        assert torch.equal(a["drone"], b["drone"]) and torch.equal(a["satellite"], b["satellite"])


def test_pair_dataset_corrupt_image(tmp_path):
    pairs = _pairs(tmp_path, 2, 2)
    pairs[1].drone.write_bytes(b"garbage")
    with pytest.raises(DataError, match=str(pairs[1].drone.name)):
        PairDataset(pairs, img_size=16)[1]
    ds = PairDataset(pairs, img_size=16, skip_corrupt=True)
    item = ds[1]
    assert item["label"] == pairs[2].label and len(ds.corrupt) == 1
    assert str(pairs[1].drone) in ds.corrupt[0]


# --- ImageListDataset ----------------------------------------------------------------------------
def test_image_list_dataset_weather_keyed_by_path(tmp_path):
    p = _write(tmp_path / "query_drone/0001/image-01.png", _gradient(64, 64))
    clean = ImageListDataset([p], img_size=32)[0]
    foggy = ImageListDataset([p], img_size=32, weather="fog")[0]
    foggy2 = ImageListDataset([p], img_size=32, weather="fog")[0]
    assert clean["index"] == 0 and clean["image"].shape == (3, 32, 32)
    assert torch.equal(foggy["image"], foggy2["image"])
    assert not torch.equal(foggy["image"], clean["image"])
    from geolink.data.images import load_image

    manual = eval_transforms(32)(
        image=apply_weather(load_image(p), "fog", "query_drone/0001/image-01.png")
    )
    assert torch.equal(manual["image"], foggy["image"])
    with pytest.raises(ConfigError, match="unknown weather 'hail'"):
        ImageListDataset([p], weather="hail")


def test_image_list_dataset_corrupt(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(DataError, match="x.jpg"):
        ImageListDataset([bad], img_size=16)[0]
    item = ImageListDataset([bad], img_size=16, skip_corrupt=True)[0]
    assert item["valid"] is False and item["image"].shape == (3, 16, 16)


# --- sampler -------------------------------------------------------------------------------------
def _labels(n_loc: int = 30, per: int = 7, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    labels = [loc for loc in range(n_loc) for _ in range(int(rng.integers(1, per + 1)))]
    return labels


def test_sampler_batches_have_distinct_locations_and_no_repeats():
    labels = _labels()
    sampler = DistinctLocationBatchSampler(labels, batch_size=8, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) > 0
        used = [i for b in batches for i in b]
        assert len(used) == len(set(used))  # each pair at most once per epoch
        for b in batches:
            assert len(b) == 8 and len({labels[i] for i in b}) == 8
    # almost every pair is used (only an unfillable tail is dropped)
    assert len(used) >= len(labels) - 8 - max(np.bincount(labels))


def test_sampler_seeded_epochs_and_no_drop_last():
    labels = _labels()
    a = DistinctLocationBatchSampler(labels, 8, seed=5)
    b = DistinctLocationBatchSampler(labels, 8, seed=5)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    c = DistinctLocationBatchSampler(labels, 8, seed=5, drop_last=False)
    batches = list(c)
    assert sorted(i for bt in batches for i in bt) == list(range(len(labels)))
    assert all(len({labels[i] for i in bt}) == len(bt) for bt in batches)
    with pytest.raises(ConfigError, match="only 3"):
        DistinctLocationBatchSampler([0, 1, 2, 2], 4)


def test_sampler_resume_mid_epoch():
    labels = _labels()
    full = DistinctLocationBatchSampler(labels, 4, seed=9)
    full.set_epoch(2)
    expected = list(full)
    run = DistinctLocationBatchSampler(labels, 4, seed=9)
    run.set_epoch(2)
    it = iter(run)
    first = [next(it) for _ in range(3)]
    state = run.state_dict()
    assert state["start_batch"] == 3 and state["epoch"] == 2
    resumed = DistinctLocationBatchSampler(labels, 4, seed=0)
    resumed.load_state_dict(state)
    assert len(resumed) == len(expected) - 3
    assert first + list(resumed) == expected
    assert len(list(resumed)) == len(expected)  # the next pass starts the epoch from 0 again
    with pytest.raises(ConfigError, match="batch_size"):
        DistinctLocationBatchSampler(labels, 8).load_state_dict(state)


def test_sampler_distributed_slices_form_a_distinct_global_batch():
    labels = _labels(40)
    ranks = [
        DistinctLocationBatchSampler(labels, 4, seed=2, num_replicas=2, rank=r) for r in (0, 1)
    ]
    for b0, b1 in zip(*ranks, strict=True):
        glob = b0 + b1
        assert len(glob) == 8 and len({labels[i] for i in glob}) == 8
    assert len(ranks[0]) == len(ranks[1]) > 0
    with pytest.raises(ConfigError, match="drop_last=True"):
        DistinctLocationBatchSampler(labels, 4, num_replicas=2, rank=0, drop_last=False)
