"""Dataset readers on tiny fixture trees written here in each native layout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from geolink.data import DATASETS, build_dataset
from geolink.data.denseuav import read_gps_file
from geolink.data.images import load_image
from geolink.data.sues200 import default_train_ids
from geolink.errors import ConfigError, DataError


def _img(path: Path, value: int = 100, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size, 3), value, np.uint8)
    img[0, 0] = (value + 7) % 256  # distinct pixels per file
    assert cv2.imwrite(str(path), img)
    return path


def make_u1652(root: Path, train=("0001", "0002", "0005"), test=("0010", "0011"), n_drone=3,
               extra_gallery=("0099",), gps: bool = False) -> Path:  # fmt: skip
    for loc in train:
        for i in range(n_drone):
            _img(root / "train/drone" / loc / f"image-{i + 1:02d}.jpeg")
        _img(root / "train/satellite" / loc / f"{loc}.jpg")
    for loc in test:
        for i in range(n_drone):
            _img(root / "test/query_drone" / loc / f"image-{i + 1:02d}.jpeg")
            _img(root / "test/gallery_drone" / loc / f"image-{i + 1:02d}.jpeg")
        _img(root / "test/query_satellite" / loc / f"{loc}.jpg")
        _img(root / "test/gallery_satellite" / loc / f"{loc}.jpg")
    for loc in extra_gallery:
        _img(root / "test/gallery_satellite" / loc / f"{loc}.jpg")
    if gps:
        rows = [
            f"{loc},{30 + i * 0.001:.6f},{120 + i * 0.002:.6f}"
            for i, loc in enumerate(train + test)
        ]
        (root / "gps.csv").write_text("name,lat,lon\n" + "\n".join(rows) + "\n")
    return root


# --- University-1652 ---------------------------------------------------------------------------
def test_u1652_pairs_labels_and_both_directions(tmp_path):
    ds = build_dataset("university1652", make_u1652(tmp_path / "U"))
    pairs = ds.train_pairs()
    assert len(pairs) == 3 * 3
    assert {p.location for p in pairs} == {"0001", "0002", "0005"}
    assert {p.location: p.label for p in pairs} == {"0001": 0, "0002": 1, "0005": 2}
    for p in pairs:
        assert p.drone.parent.name == p.location == p.satellite.parent.name == p.scene
        assert p.satellite.name == f"{p.location}.jpg"
    d2s, s2d = ds.eval_sets()
    assert d2s.name == "drone2satellite" and s2d.name == "satellite2drone"
    assert len(d2s.queries) == 6 and d2s.query_labels.count("0010") == 3
    assert d2s.gallery_labels == ["0010", "0011", "0099"]  # distractor kept
    assert (d2s.query_view, d2s.gallery_view) == ("drone", "satellite")
    assert s2d.query_labels == ["0010", "0011"] and len(s2d.gallery) == 6
    assert all(q.parent.name == lab for q, lab in zip(s2d.gallery, s2d.gallery_labels, strict=True))
    assert [s.name for s in ds.eval_sets("satellite2drone")] == ["satellite2drone"]
    assert set(ds.scenes("train")) == {"0001", "0002", "0005"}
    assert set(ds.scenes("test")) == {"0010", "0011"}


def test_u1652_summary_counts(tmp_path):
    info = build_dataset("university1652", make_u1652(tmp_path / "U")).summary()
    assert info["complete"] and info["problems"] == []
    assert info["splits"]["train"]["drone"] == {"locations": 3, "images": 9}
    assert info["splits"]["test"]["gallery_satellite"] == {"locations": 3, "images": 3}


def test_u1652_missing_folder_names_it(tmp_path):
    root = make_u1652(tmp_path / "U")
    for p in (root / "test/gallery_drone").rglob("*"):
        if p.is_file():
            p.unlink()
    for p in sorted((root / "test/gallery_drone").rglob("*"), reverse=True):
        p.rmdir()
    (root / "test/gallery_drone").rmdir()
    ds = build_dataset("university1652", root)
    info = ds.summary()
    assert not info["complete"]
    assert any("gallery_drone" in p for p in info["problems"])
    with pytest.raises(DataError, match="test/gallery_drone.*missing"):
        ds.eval_sets("satellite2drone")
    assert len(ds.eval_sets("drone2satellite")) == 1  # the other direction still works


def test_wrong_root_and_layout_messages(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_dataset("university1652", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="(?s)neither a train/ nor a test/.*Expected layout"):
        build_dataset("university1652", tmp_path / "empty")
    with pytest.raises(ConfigError, match="available: denseuav, folder"):
        build_dataset("cvusa", tmp_path)
    with pytest.raises(ConfigError, match="unknown option.*heights"):
        build_dataset("university1652", make_u1652(tmp_path / "U"), heights="150")
    assert DATASETS.names() == ["denseuav", "folder", "sues200", "synthetic", "university1652"]


def test_corrupt_image_named_and_skippable(tmp_path):
    root = make_u1652(tmp_path / "U")
    bad = root / "train/drone/0002/image-02.jpeg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="image-02.jpeg"):
        load_image(bad)
    ds = build_dataset("university1652", root)
    with pytest.raises(DataError, match="(?s)0002/image-02.jpeg.*skip-corrupt"):
        ds.summary(check_images="header")
    info = ds.summary(check_images="decode", skip_corrupt=True)
    assert [c["path"] for c in info["corrupt"]] == [str(bad)]
    assert not info["complete"]
    with pytest.raises(DataError, match="empty"):
        (root / "e.jpg").write_bytes(b"")
        load_image(root / "e.jpg")


def test_load_image_grey_and_rgba(tmp_path):
    grey = tmp_path / "g.png"
    cv2.imwrite(str(grey), np.full((5, 7), 42, np.uint8))
    rgba = tmp_path / "a.png"
    px = np.zeros((4, 4, 4), np.uint8)
    px[..., 0] = 255  # blue in BGRA
    cv2.imwrite(str(rgba), px)
    g, a = load_image(grey), load_image(rgba)
    assert g.shape == (5, 7, 3) and g.dtype == np.uint8 and (g == 42).all()
    assert a.shape == (4, 4, 3) and tuple(a[0, 0]) == (0, 0, 255)  # RGB order


# --- SUES-200 ------------------------------------------------------------------------------------
def test_sues_shipped_train_ids():
    ids = default_train_ids()
    assert len(ids) == 120 and len(set(ids)) == 120
    assert ids[0] == "0001" and ids[-1] == "0200" and "0008" not in ids
    assert all(len(i) == 4 and 1 <= int(i) <= 200 for i in ids)


def make_sues_raw(root: Path, train=("0001", "0002"), test=("0008", "0012"), n=2) -> Path:
    for loc in train + test:
        _img(root / "satellite-view" / loc / "0.png")
        for h in ("150", "200", "250", "300"):
            for i in range(n):
                _img(root / "drone-view" / loc / h / f"{i}.jpg")
    return root


def test_sues_raw_layout_heights_and_split(tmp_path):
    ds = build_dataset("sues200", make_sues_raw(tmp_path / "S"))
    assert ds.mode == "raw"
    pairs = ds.train_pairs()
    assert len(pairs) == 2 * 4 * 2  # locations x heights x frames
    assert {p.location for p in pairs} == {"0001", "0002"}  # 0008/0012 are test ids
    assert {p.scene for p in pairs if p.location == "0001"} == {
        f"{h}/0001" for h in (150, 200, 250, 300)
    }
    assert len({p.label for p in pairs}) == 2  # one label per location across heights
    sets = ds.eval_sets()
    assert [s.name for s in sets][:2] == ["drone2satellite@150", "satellite2drone@150"]
    assert len(sets) == 8
    d2s = sets[0]
    assert sorted(set(d2s.query_labels)) == ["0008", "0012"]
    assert d2s.gallery_labels == ["0001", "0002", "0008", "0012"]  # all locations in the gallery
    assert all(q.parent.name == "150" for q in d2s.queries)
    s2d = sets[1]
    assert s2d.query_labels == ["0008", "0012"] and len(s2d.gallery) == 4 * 2
    ds2 = build_dataset("sues200", tmp_path / "S", heights="200,300")
    assert [s.name for s in ds2.eval_sets("drone2satellite")] == [
        "drone2satellite@200",
        "drone2satellite@300",
    ]
    assert set(ds2.scenes("test")) == {"200/0008", "200/0012", "300/0008", "300/0012"}
    with pytest.raises(DataError, match="unknown SUES-200 height"):
        build_dataset("sues200", tmp_path / "S", heights="100")


def test_sues_split_layout(tmp_path):
    root = tmp_path / "S2"
    for h in ("150", "250"):
        for loc in ("0001", "0002"):
            _img(root / "Training" / h / "drone" / loc / "a.jpg")
            _img(root / "Training" / h / "drone" / loc / "b.jpg")
            _img(root / "Training" / h / "satellite" / loc / "0.png")
        for loc in ("0008",):
            _img(root / "Testing" / h / "query_drone" / loc / "a.jpg")
            _img(root / "Testing" / h / "query_satellite" / loc / "0.png")
        for loc in ("0001", "0002", "0008"):
            _img(root / "Testing" / h / "gallery_drone" / loc / "a.jpg")
            _img(root / "Testing" / h / "gallery_satellite" / loc / "0.png")
    ds = build_dataset("sues200", root, heights=["150", "250"])
    assert ds.mode == "split"
    assert len(ds.train_pairs()) == 2 * 2 * 2
    sets = {s.name: s for s in ds.eval_sets()}
    assert set(sets) == {
        f"{d}@{h}" for d in ("drone2satellite", "satellite2drone") for h in (150, 250)
    }
    assert sets["drone2satellite@250"].query_labels == ["0008"]
    assert sets["satellite2drone@150"].gallery_labels == ["0001", "0002", "0008"]
    # a height that is not on disk is named
    with pytest.raises(DataError, match="Training/200/drone"):
        build_dataset("sues200", root, heights="200").train_pairs()


# --- DenseUAV -------------------------------------------------------------------------------------
def make_dense(root: Path) -> Path:
    for loc in ("000000", "000001"):
        for h in ("H100", "H90", "H80"):
            _img(root / "train/drone" / loc / f"{h}.JPG")
            _img(root / "train/satellite" / loc / f"{h}.tif")
            _img(root / "train/satellite" / loc / f"{h}_old.tif")
    for loc in ("002300", "002301"):
        _img(root / "test/query_drone" / loc / "H100.JPG")
        _img(root / "test/gallery_drone" / loc / "H100.JPG")
        _img(root / "test/query_satellite" / loc / "H100.tif")
        _img(root / "test/gallery_satellite" / loc / "H100.tif")
    lines = [
        "train/drone/000000/H100.JPG E120.38761 N30.32390 100.0",
        "train/drone/000001/H100.JPG E120.38800 N30.32400 100.0",
        "test/query_drone/002300/H100.JPG E120.39000 N30.33000 100.0",
        "test/query_drone/002301/H100.JPG E120.39100 N30.33100 100.0",
    ]
    (root / "Dense_GPS_ALL.txt").write_text("\n".join(lines) + "\n")
    return root


def test_denseuav_gps_parsed_like_official(tmp_path):
    root = make_dense(tmp_path / "D")
    gps = read_gps_file(root / "Dense_GPS_ALL.txt")
    assert gps["000000"] == (30.32390, 120.38761)  # token 1 is lon (E), token 2 lat (N)
    ds = build_dataset("denseuav", root)
    d2s = ds.eval_sets("drone2satellite")[0]
    assert d2s.query_coords == [(30.33, 120.39), (30.331, 120.391)]
    assert d2s.gallery_coords == d2s.query_coords
    (root / "bad.txt").write_text("train/drone/000000/H100.JPG Eabc N30\n")
    with pytest.raises(DataError, match=r"bad.txt:1: malformed"):
        read_gps_file(root / "bad.txt")


def test_denseuav_pairs_by_height(tmp_path):
    ds = build_dataset("denseuav", make_dense(tmp_path / "D"))
    pairs = ds.train_pairs()
    assert len(pairs) == 2 * 3 * 2  # locations x drone heights x (current, old)
    for p in pairs:
        assert p.satellite.stem.split("_")[0] == p.drone.stem
    assert len(build_dataset("denseuav", tmp_path / "D", pairs="first").train_pairs()) == 6
    assert len(build_dataset("denseuav", tmp_path / "D", pairs="all").train_pairs()) == 36
    assert ds.summary()["complete"]


# --- folder -----------------------------------------------------------------------------------------
def test_folder_dataset_unlabeled_queries_and_csv(tmp_path):
    root = tmp_path / "F"
    for loc in ("tileA", "tileB"):
        _img(root / "satellite" / f"{loc}.png")
    _img(root / "drone/tileA/1.jpg")
    _img(root / "drone/tileA/2.jpg")
    _img(root / "drone/free.jpg")  # unlabeled query
    (root / "gps.csv").write_text(
        "name,lat,lon\ntileA,47.1,8.5\ntileB,47.2,8.6\nfree.jpg,47.15,8.55\n"
    )
    ds = build_dataset("folder", root)
    d2s, s2d = ds.eval_sets()
    assert d2s.query_labels == ["tileA", "tileA", ""] and not d2s.labeled
    assert d2s.gallery_labels == ["tileA", "tileB"]
    assert d2s.gallery_coords == [(47.1, 8.5), (47.2, 8.6)]
    assert d2s.query_coords[-1] == (47.15, 8.55) and d2s.query_coords[0] == (47.1, 8.5)
    assert s2d.query_labels == ["tileA", "tileB"] and s2d.gallery_labels == ["tileA", "tileA"]
    assert [p.location for p in ds.train_pairs()] == ["tileA", "tileA"]
    (root / "gps.csv").write_text("name,lat,lon\ntileA,north,8.5\n")
    with pytest.raises(DataError, match=r"gps.csv:2: lat/lon must be numbers"):
        build_dataset("folder", root)
    (root / "gps.csv").write_text("id,x,y\n")
    with pytest.raises(DataError, match="expected header name,lat,lon"):
        build_dataset("folder", root)


def test_folder_only_unlabeled(tmp_path):
    root = tmp_path / "F"
    _img(root / "satellite/t1.jpg")
    _img(root / "drone/q.jpg")
    ds = build_dataset("folder", root)
    assert [s.name for s in ds.eval_sets()] == ["drone2satellite"]
    with pytest.raises(DataError, match="no labeled drone images"):
        ds.train_pairs()
    with pytest.raises(DataError, match="no satellite images"):
        (root / "sat2").mkdir()
        build_dataset("folder", root, satellite_dir="sat2")


# --- synthetic ----------------------------------------------------------------------------------
def make_synth(root: Path) -> Path:
    regions = ["campus", "suburb"]
    for k, r in enumerate(regions):
        make_u1652(root / r, train=("0000", "0001"), test=("0002",), n_drone=2, extra_gallery=(),
                   gps=True)  # fmt: skip
        (root / r / "synth.json").write_text(json.dumps({"region": r, "origin": [30 + k, 120]}))
    (root / "synth.json").write_text(
        json.dumps(
            {"generator_version": 1, "seed": 0, "preset": "tiny", "params": {}, "regions": regions}
        )
    )
    return root


def test_synthetic_namespaced_regions(tmp_path):
    root = make_synth(tmp_path / "syn")
    ds = build_dataset("synthetic", root)
    pairs = ds.train_pairs()
    assert len(pairs) == 2 * 2 * 2
    assert {p.location for p in pairs} == {
        "campus/0000",
        "campus/0001",
        "suburb/0000",
        "suburb/0001",
    }
    assert sorted({p.label for p in pairs}) == [0, 1, 2, 3]
    assert {p.scene for p in pairs} == {p.location for p in pairs}
    d2s = ds.eval_sets("drone2satellite")[0]
    assert sorted(set(d2s.query_labels)) == ["campus/0002", "suburb/0002"]
    assert d2s.gallery_coords[0] == pytest.approx((30.002, 120.004))
    assert ds.coordinates()["suburb/0001"] == pytest.approx((30.001, 120.002))
    assert ds.camera_file("suburb/0001") == root / "suburb/cameras/0001.json"
    one = build_dataset("synthetic", root, regions="suburb")
    assert {p.location.split("/")[0] for p in one.train_pairs()} == {"suburb"}
    assert [s.name for s in one.region_eval_sets()] == [
        "drone2satellite@suburb",
        "satellite2drone@suburb",
    ]
    with pytest.raises(DataError, match="unknown region.*available: campus, suburb"):
        build_dataset("synthetic", root, regions="desert")
    # a region root is also a plain university1652 root
    assert len(build_dataset("university1652", root / "campus").train_pairs()) == 4
    with pytest.raises(DataError, match="is one region of a synthetic benchmark"):
        build_dataset("synthetic", root / "campus")


def test_synthetic_bad_roots(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="(?s)has no synth.json.*geolink synth"):
        build_dataset("synthetic", tmp_path / "plain")
    (tmp_path / "plain/synth.json").write_text("{not json")
    with pytest.raises(DataError, match="synth.json is malformed"):
        build_dataset("synthetic", tmp_path / "plain")
    (tmp_path / "plain/synth.json").write_text(json.dumps({"regions": ["gone"]}))
    with pytest.raises(DataError, match="region folder .*gone listed in"):
        build_dataset("synthetic", tmp_path / "plain")


@pytest.mark.slow
@pytest.mark.gl
def test_reads_real_synth_tiny_output(tmp_path):
    synthetic = pytest.importorskip("geolink.data.synthetic")
    try:
        root = synthetic.generate(tmp_path / "synth", preset="tiny", seed=0)
    except synthetic.GLUnavailableError as e:
        pytest.skip(f"no headless OpenGL: {e}")
    ds = build_dataset("synthetic", root)
    info = ds.summary(check_images="decode")
    assert info["complete"], info["problems"]
    pairs = ds.train_pairs()
    assert pairs and all(ds.camera_file(p.location).is_file() for p in pairs)
    assert all(p.scene in ds.coordinates() for p in pairs)
    d2s = ds.eval_sets("drone2satellite")[0]
    assert set(d2s.query_labels) <= set(d2s.gallery_labels)
    assert all(c is not None for c in d2s.gallery_coords)


def test_sues200_sepia_solarize_option_reaches_the_training_transforms(tmp_path):
    """#14.7: the authors' SUES-200/DenseUAV scripts add OneOf[ToSepia, Solarize] p 0.1."""
    import albumentations as A

    from geolink.data.torch_datasets import PairDataset

    def extra_ops(ds):
        t = PairDataset(ds.train_pairs(), img_size=32, sepia_solarize=ds.sepia_solarize)
        found = []
        for view in (t.drone_transform, t.satellite_transform):
            ones = [op for op in view.transforms if isinstance(op, A.OneOf)]
            found.append(
                [
                    (op.p, sorted(type(x).__name__ for x in op.transforms))
                    for op in ones
                    if any(isinstance(x, A.ToSepia) for x in op.transforms)
                ]
            )
        return found

    root = make_sues_raw(tmp_path / "S")
    assert extra_ops(build_dataset("sues200", root)) == [[], []]
    on = build_dataset("sues200", root, sepia_solarize=True)
    assert extra_ops(on) == [[(0.1, ["Solarize", "ToSepia"])]] * 2


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height 8-bit RGB pixels, with one compressed row of
    zeros as its data: a few dozen bytes that a decoder would expand to width*height*3 bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bombs_and_degenerate_images_are_refused_before_decoding(
    tmp_path, monkeypatch
):
    """#14.12/#14.17: a 48 KB PNG declaring 20000² pixels was decoded (GBs of RAM); a 1×1
    image was accepted by data summary, train and eval."""
    from geolink.data.images import check_image, load_image

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(20000, 20000))
    with pytest.raises(
        DataError, match=r"declares 400,000,000 pixels, over the limit of 100,000,000"
    ):
        load_image(bomb)
    assert "over the limit" in check_image(bomb, "header")  # data summary's default check
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(DataError, match="degenerate: 1x1"):
        load_image(tiny)
    assert "degenerate" in check_image(tiny, "header")
    ok = tmp_path / "ok.png"
    cv2.imwrite(str(ok), np.zeros((40, 30, 3), np.uint8))
    assert load_image(ok).shape == (40, 30, 3)
    monkeypatch.setenv("GEOLINK_MAX_IMAGE_PIXELS", "1000")  # the cap is configurable
    with pytest.raises(DataError, match="GEOLINK_MAX_IMAGE_PIXELS"):
        load_image(ok)


def test_truncated_images_are_refused_in_header_and_decode_mode(tmp_path):
    """#14.17: a truncated JPEG passed `data summary` in header mode (and OpenCV decodes it
    with grey rows, so training and eval took it too)."""
    from geolink.data.images import check_image, load_image

    rng = np.random.default_rng(0)
    for ext in ("jpg", "png"):
        full = tmp_path / f"full.{ext}"
        cv2.imwrite(str(full), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        cut = tmp_path / f"cut.{ext}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
        assert check_image(full, "header") is None and load_image(full).shape == (64, 64, 3)
        assert "truncated" in check_image(cut, "header")
        with pytest.raises(DataError, match="truncated"):
            load_image(cut)


def test_summary_names_broken_and_looping_symlinks(tmp_path):
    """#14.17: a self-referencing symlink was silently dropped from the image lists."""
    root = tmp_path / "U"
    for split, folder in (("train", "drone"), ("train", "satellite")):
        d = root / split / folder / "0001"
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "a.jpg"), np.full((8, 8, 3), 80, np.uint8))
    loop = root / "train/drone/0001/loop.jpg"
    loop.symlink_to(loop)
    (root / "train/drone/0001/gone.jpg").symlink_to(tmp_path / "missing.jpg")
    info = build_dataset("university1652", root).summary()
    problems = "\n".join(info["problems"])
    assert "2 broken or looping symlink(s)" in problems and "loop.jpg" in problems
