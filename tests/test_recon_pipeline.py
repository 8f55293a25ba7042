"""`geolink reconstruct` as a step: manifest, resume, failures, groups, import, features, CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

from geolink.errors import ConfigError, DataError
from geolink.recon.colmap_import import import_colmap
from geolink.recon.features import cache_point_features, load_point_features
from geolink.recon.pipeline import main, split_groups
from geolink.recon.pointcloud import read_ply, write_ply
from geolink.testing.recon import make_plane_scene


@pytest.fixture(scope="module")
def plane_scenes(tmp_path_factory):
    """Two reconstructable plane scenes and one of featureless images."""
    root = tmp_path_factory.mktemp("planes") / "region"
    return {
        "region/0001": make_plane_scene(root, "0001", n_views=12, size=112, seed=1),
        "region/0002": make_plane_scene(root, "0002", n_views=12, size=112, seed=2),
        "region/0003": make_plane_scene(root, "0003", n_views=6, size=64, blank=True),
    }


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_depth_pipeline_on_synthetic_dataset(synth_tiny, tmp_path):
    from geolink.data import build_dataset

    ds = build_dataset("synthetic", synth_tiny)
    out = tmp_path / "recon"
    path = main({"backend": "depth", "backend_conf": {"stride": 4}, "num_points": 256}, ds, out)
    manifest = _manifest(out)
    assert path == out / "manifest.json"
    scenes = ds.scenes("train")
    assert set(manifest["scenes"]) == set(scenes)
    for key, entry in manifest["scenes"].items():
        assert entry["status"] == "ok", entry
        assert entry["images_used"] == len(scenes[key]) == entry["images_registered"]
        assert entry["points_filtered"] > 256 and entry["backend"] == "depth"
        xyz = read_ply(out / entry["ply"]).xyz
        assert xyz.shape == (256, 3)
        assert np.linalg.norm(xyz, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    assert manifest["summary"]["ok"] == len(scenes) and manifest["summary"]["failed"] == 0
    feats = load_point_features(out / "point_features.safetensors")
    assert set(feats) == set(scenes)
    assert all(v.shape == (1152,) for v in feats.values())
    assert not (out / "work").exists()  # scratch folders are removed


def test_failed_scene_is_recorded_and_the_others_succeed(plane_scenes, tmp_path):
    out = tmp_path / "recon"
    main(
        {"backend": "colmap", "workers": 2, "features": False, "min_points": 32}, plane_scenes, out
    )
    scenes = _manifest(out)["scenes"]
    assert scenes["region/0001"]["status"] == "ok" and scenes["region/0002"]["status"] == "ok"
    bad = scenes["region/0003"]
    assert bad["status"] == "failed" and "images registered" in bad["reason"]
    assert not (out / "points/region/0003.ply").exists()
    assert scenes["region/0001"]["images_registered"] >= 10
    assert _manifest(out)["summary"] == {**_manifest(out)["summary"], "ok": 2, "failed": 1}


def test_resume_skips_finished_scenes_and_overwrite_redoes(plane_scenes, tmp_path):
    out = tmp_path / "recon"
    good = {k: v for k, v in plane_scenes.items() if k != "region/0003"}
    conf = {"backend": "depth", "backend_conf": {"stride": 4}, "features": False}
    main(conf, good, out)
    first = {k: (out / f"points/{k}.ply").stat().st_mtime_ns for k in good}
    seconds = {k: v["seconds"] for k, v in _manifest(out)["scenes"].items()}
    (out / "points/region/0002.ply").unlink()  # an interrupted / lost result is redone
    main(conf, good, out)
    assert (out / "points/region/0001.ply").stat().st_mtime_ns == first["region/0001"]
    assert (out / "points/region/0002.ply").is_file()
    assert _manifest(out)["scenes"]["region/0001"]["seconds"] == seconds["region/0001"]
    main(conf, good, out, overwrite=True)
    assert (out / "points/region/0001.ply").stat().st_mtime_ns != first["region/0001"]
    with pytest.raises(ConfigError, match="other post-processing settings"):
        main({**conf, "num_points": 64}, good, out)
    with pytest.raises(ConfigError, match="made with backend 'depth'"):
        main({**conf, "backend": "colmap", "backend_conf": {}}, good, out)


def test_split_groups_contiguous_and_interleave():
    imgs = [Path(f"img{i}.jpg") for i in range(7)]
    g = split_groups({"a": imgs}, 3)
    assert list(g) == ["a_group0", "a_group1", "a_group2"]
    assert [len(v) for v in g.values()] == [2, 2, 3]
    assert g["a_group1"] == imgs[2:4]
    g = split_groups({"a": imgs}, 3, "interleave")
    assert g["a_group0"] == [imgs[0], imgs[3], imgs[6]]
    assert split_groups({"a": imgs[:2]}, 3).keys() == {"a_group0", "a_group1"}
    with pytest.raises(ConfigError):
        split_groups({"a": imgs}, 0)


def test_groups_make_scenes_per_location(plane_scenes, tmp_path):
    scenes = {"region/0001": plane_scenes["region/0001"]}
    conf = {"backend": "depth", "backend_conf": {"stride": 4}, "groups": 3, "features": False}
    main(conf, scenes, tmp_path)
    assert sorted(_manifest(tmp_path)["scenes"]) == [f"region/0001_group{i}" for i in range(3)]
    assert all(e["images_used"] == 4 for e in _manifest(tmp_path)["scenes"].values())


def test_unknown_option_and_corrupt_manifest(plane_scenes, tmp_path):
    with pytest.raises(ConfigError, match="num_pointz"):
        main({"num_pointz": 3}, plane_scenes, tmp_path)
    (tmp_path / "manifest.json").write_text("{ not json")
    with pytest.raises(DataError, match="corrupt manifest"):
        main({"backend": "depth"}, plane_scenes, tmp_path)


def _points3d_txt(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = [
        "# 3D point list",
        "# POINT3D_ID X Y Z R G B ERROR TRACK[]",
        f"# Number of points: {n}",
    ]
    for i, (x, y, z) in enumerate(rng.normal(size=(n, 3))):
        lines.append(f"{i + 1} {x} {y} {z} 10 20 30 0.5 1 {i} 2 {i}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_import_colmap_models(tmp_path):
    src = tmp_path / "colmap"
    _points3d_txt(src / "0001_group0" / "points3D.txt", 300, 0)
    _points3d_txt(src / "0002" / "sparse" / "0" / "points3D.txt", 300, 1)
    _points3d_txt(src / "0003" / "points3D.txt", 5, 2)  # too few points: degenerate
    out = tmp_path / "out"
    import_colmap({"num_points": 128, "features": False}, src, out)
    scenes = _manifest(out)["scenes"]
    assert scenes["0001_group0"]["status"] == "ok" and scenes["0002"]["status"] == "ok"
    assert scenes["0003"]["status"] == "failed" and "too few points" in scenes["0003"]["reason"]
    assert read_ply(out / "points/0002.ply").xyz.shape == (128, 3)
    (src / "0004").mkdir()
    (src / "0004" / "points3D.txt").write_text("1 0 0\n")
    with pytest.raises(DataError, match=r"0004/points3D.txt:1"):
        import_colmap({"num_points": 128, "features": False}, src, out)
    # resuming into the folder with other settings would mix cloud sizes: refused, named
    with pytest.raises(ConfigError, match=r"num_points: 128 -> 1024"):
        import_colmap({"features": False}, src, out)


def test_point_features_cache_and_errors(plane_scenes, tmp_path):
    conf = {"backend": "depth", "backend_conf": {"stride": 4}, "num_points": 256}
    main({**conf, "features": False}, plane_scenes, tmp_path)
    path = cache_point_features(tmp_path)
    feats = load_point_features(path)
    assert set(feats) == set(plane_scenes) and feats["region/0001"].shape == (1152,)
    mtime = path.stat().st_mtime_ns
    assert cache_point_features(tmp_path) == path and path.stat().st_mtime_ns == mtime
    # features come from the cached clouds: a different shape gives a different feature
    ball = np.random.default_rng(0).normal(size=(256, 3))
    write_ply(tmp_path / "points/region/0002.ply", ball / np.linalg.norm(ball, axis=1).max())
    again = load_point_features(cache_point_features(tmp_path, overwrite=True))
    np.testing.assert_allclose(again["region/0001"].numpy(), feats["region/0001"].numpy())
    assert not np.allclose(again["region/0002"].numpy(), feats["region/0002"].numpy())
    with pytest.raises(DataError, match="not found"):
        load_point_features(tmp_path / "nothing.safetensors")
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage")
    with pytest.raises(DataError, match="corrupt point-feature file"):
        load_point_features(path)


def test_cli_reconstruct_with_preview(synth_tiny, tmp_path, capsys):
    from geolink.cli.main import main as cli

    out, png = tmp_path / "recon", tmp_path / "preview.png"
    rc = cli(
        [
            "reconstruct",
            "--dataset",
            "synthetic",
            "--root",
            str(synth_tiny),
            "--backend",
            "depth",
            "--out",
            str(out),
            "--num-points",
            "256",
            "--no-features",
            "--preview",
            str(png),
            "-b",
            "stride=4",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "0 failed" in text and "manifest:" in text
    assert _manifest(out)["backend_conf"] == {"stride": 4}
    from PIL import Image

    assert Image.open(png).size[0] > 300
    with pytest.raises(SystemExit) as e:  # argparse: the choices come from the registry
        cli(
            [
                "reconstruct",
                "--dataset",
                "synthetic",
                "--root",
                str(synth_tiny),
                "--backend",
                "nerf",
                "--out",
                str(tmp_path / "x"),
            ]
        )
    assert e.value.code == 2
    assert (
        "invalid choice: 'nerf' (choose from 'colmap', 'depth', 'vggt')" in capsys.readouterr().err
    )


def test_cli_reconstruct_exits_1_when_a_scene_failed(tmp_path, capsys):
    """#14.9/#14.17: "1 ok, 1 failed" used to exit 0; the ok scene is kept."""
    import cv2

    from geolink.cli.main import main as cli

    root = tmp_path / "U"  # a University-1652 tree; the depth maps sit beside train/
    make_plane_scene(root, "0001", n_views=8, size=96, seed=1)
    make_plane_scene(root, "0002", n_views=6, size=64)
    for depth in (root / "depth/0002").glob("*.npy"):  # this scene cannot be fused
        depth.unlink()
    for loc in ("0001", "0002"):
        (root / "train/satellite" / loc).mkdir(parents=True)
        cv2.imwrite(str(root / "train/satellite" / loc / f"{loc}.jpg"), np.zeros((8, 8, 3)))
    out = tmp_path / "recon"
    argv = ["reconstruct", "--dataset", "university1652", "--root", str(root), "--backend", "depth",
            "--out", str(out), "--num-points", "256", "--no-features", "-b", "stride=4"]  # fmt: skip
    assert cli(argv) == 1
    captured = capsys.readouterr()
    assert "1 ok, 1 failed" in captured.out and "1 scene(s) failed" in captured.err
    assert _manifest(out)["scenes"]["0001"]["status"] == "ok"
