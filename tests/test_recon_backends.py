"""Reconstruction backends: depth fusion, COLMAP SfM, and VGGT output conversion."""

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from geolink.errors import ConfigError, DataError, MissingDependencyError
from geolink.recon.align import umeyama_sim3
from geolink.recon.base import SceneFailed, build_backend
from geolink.recon.depth import find_view, unproject_depth
from geolink.recon.vggt import (
    extri_intri_to_pose_encoding,
    merge_chunks,
    pose_encoding_to_extri_intri,
    quat_xyzw_to_rotmat,
    rotmat_to_quat_xyzw,
    vggt_outputs_to_cloud,
)
from geolink.testing.recon import look_at, make_plane_scene


def _camera(view):
    return np.array(view["K"], float), np.array(view["world_from_camera"], float)


def _project(view, pts):
    """World points -> (col, row) pixel indices and z-depth in a view of the synthetic layout."""
    K, T = _camera(view)
    Tinv = np.linalg.inv(T)
    cam = pts @ Tinv[:3, :3].T + Tinv[:3, 3]
    if view.get("projection") == "orthographic":
        u, v = K[0, 0] * cam[:, 0] + K[0, 2], K[1, 1] * cam[:, 1] + K[1, 2]
    else:
        u, v = (cam @ K.T)[:, 0] / cam[:, 2], (cam @ K.T)[:, 1] / cam[:, 2]
    return np.floor(u).astype(int), np.floor(v).astype(int), cam[:, 2]


def _align_to_truth(cloud, paths):
    """Sim(3) from the SfM camera centres to the true ones; returns (aligned points, errors)."""
    centres = cloud.info["camera_centers"]
    used = [p for p in paths if str(p.resolve()) in centres]
    src = np.array([centres[str(p.resolve())] for p in used])
    dst = np.array([_camera(find_view(p)[1])[1][:3, 3] for p in used])
    s, R, t = umeyama_sim3(src, dst)
    cam_err = np.linalg.norm(s * src @ R.T + t - dst, axis=1)
    scale = np.linalg.norm(dst - dst.mean(0), axis=1).mean()
    return s * cloud.xyz @ R.T + t, cam_err, scale


# ------------------------------------------------------------------------------- depth
def test_unproject_depth_hand_case():
    K = np.array([[2.0, 0, 1.0], [0, 2.0, 1.0], [0, 0, 1]])
    T = np.eye(4)
    T[:3, 3] = [10, 20, 30]
    depth = np.array([[4.0, 0.0], [np.nan, 2.0]], np.float32)
    pts, pix = unproject_depth(depth, K, T, pixel_center=0.5)
    # pixel (0,0) centre (0.5,0.5): x = (0.5-1)/2*4 = -1; pixel (1,1) centre 1.5: x = 0.25*2 = 0.5
    np.testing.assert_allclose(pts, [[9.0, 19.0, 34.0], [10.5, 20.5, 32.0]])
    np.testing.assert_array_equal(pix, [[0, 0], [1, 1]])


def test_depth_backend_on_plane_recovers_the_plane(tmp_path):
    paths = make_plane_scene(tmp_path / "r", n_views=4, size=96)
    cloud = build_backend("depth", {"stride": 1}).reconstruct(paths, tmp_path / "w")
    assert cloud.info["images_registered"] == 4 and cloud.rgb is not None
    assert np.abs(cloud.xyz[:, 2]).max() < 1e-3  # the plane z = 0
    assert len(cloud) > 4 * 96 * 96 * 0.5


def test_depth_fusion_reproduces_rendered_geometry(synth_tiny):
    """Fused drone depth agrees with another drone view's depth and with the satellite depth."""
    region = sorted(p for p in synth_tiny.iterdir() if p.is_dir())[0]
    meta = json.loads(sorted((region / "cameras").glob("*.json"))[0].read_text())
    a, b = meta["drone"][0], meta["drone"][1]
    pts, _ = unproject_depth(np.load(region / a["depth"]), *_camera(a))
    col, row, z = _project(b, pts)
    depth_b = np.load(region / b["depth"])
    ok = (col >= 0) & (row >= 0) & (col < depth_b.shape[1]) & (row < depth_b.shape[0])
    rel = np.abs(depth_b[row[ok], col[ok]] - z[ok]) / z[ok]
    assert ok.sum() > 1000
    assert np.median(rel) < 0.01 and (rel < 0.01).mean() > 0.7  # measured 0.002 / 0.80
    sat = meta["satellite"]
    depth_s = np.load(region / sat["depth"])
    col, row, z = _project(sat, pts)
    ok = (col >= 0) & (row >= 0) & (col < depth_s.shape[1]) & (row < depth_s.shape[0])
    err = np.abs(depth_s[row[ok], col[ok]] - z[ok])
    assert np.median(err) < 0.05 and (err < 0.5).mean() > 0.75  # measured 2e-5 m / 0.87


def test_depth_backend_reports_missing_cameras(tmp_path):
    img = tmp_path / "train" / "drone" / "0001" / "image-01.jpg"
    img.parent.mkdir(parents=True)
    img.write_bytes(b"")
    with pytest.raises(DataError, match="cameras/0001.json"):
        build_backend("depth").reconstruct([img], tmp_path / "w")


# ------------------------------------------------------------------------------- colmap
def test_colmap_on_plane_aligns_to_truth(tmp_path):
    paths = make_plane_scene(tmp_path / "r", n_views=12, size=160, seed=3)
    cloud = build_backend("colmap").reconstruct(paths, tmp_path / "w")
    assert cloud.info["images_registered"] >= 10
    pts, cam_err, scale = _align_to_truth(cloud, paths)
    assert cam_err.mean() < 0.02 * scale  # measured 0.2 m max over a 40 m orbit
    assert np.median(np.abs(pts[:, 2])) < 0.5  # distance to the plane z = 0; measured 0.06 m


@pytest.mark.gl
def test_colmap_on_synthetic_scene_lies_on_the_true_surface(tmp_path):
    from geolink.data.synthetic import GLUnavailableError, generate

    try:
        root = generate(
            tmp_path / "s",
            preset="tiny",
            seed=0,
            regions=("campus",),
            train_locations=1,
            test_locations=1,
            drone_size=192,
            rings=((150.0, 135.0, 8), (110.0, 95.0, 8)),
        )
    except GLUnavailableError as e:
        pytest.skip(f"no OpenGL: {e}")
    paths = sorted((root / "campus" / "train" / "drone").glob("*/*.jpg"))
    cloud = build_backend("colmap").reconstruct(paths, tmp_path / "w")
    assert cloud.info["images_registered"] >= 12
    pts, cam_err, scale = _align_to_truth(cloud, paths)
    truth = build_backend("depth", {"stride": 1}).reconstruct(paths, tmp_path / "d")
    dist = cKDTree(truth.xyz).query(pts)[0]
    # measured: camera error 0.9 m mean over a 117 m orbit; median point distance 1.2 m
    assert cam_err.mean() < 0.03 * scale
    assert np.median(dist) < 3.0


def test_colmap_blank_images_fail_with_reason(tmp_path):
    paths = make_plane_scene(tmp_path / "r", n_views=6, size=96, blank=True)
    with pytest.raises(SceneFailed, match="images registered"):
        build_backend("colmap").reconstruct(paths, tmp_path / "w")


def test_backend_options_are_strict():
    with pytest.raises(ConfigError, match="max_num_featurez"):
        build_backend("colmap", {"max_num_featurez": 10})
    with pytest.raises(ConfigError, match="available: colmap, depth, vggt"):
        build_backend("nerf")


# ------------------------------------------------------------------------------- vggt
def test_quaternion_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[3] >= 0 else -q
        R = quat_xyzw_to_rotmat(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(rotmat_to_quat_xyzw(R), q, atol=1e-9)
    # hand case: 90 deg about z, q = (0, 0, sin 45, cos 45)
    s = np.sqrt(0.5)
    np.testing.assert_allclose(
        quat_xyzw_to_rotmat([0, 0, s, s]), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12
    )


def test_pose_encoding_intrinsics_hand_case():
    enc = np.array([[1, 2, 3, 0, 0, 0, 1, np.pi / 2, np.pi / 2]])
    extr, intr = pose_encoding_to_extri_intri(enc, (100, 200))
    np.testing.assert_allclose(intr[0], [[100, 0, 100], [0, 50, 50], [0, 0, 1]], atol=1e-9)
    np.testing.assert_allclose(extr[0], [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3]])


def _vggt_like_plane(n_views=3, h=40, w=60):
    """VGGT-shaped predictions of the plane z = 0 seen from an orbit (exact depth)."""
    from geolink.testing.recon import render_plane

    tex = np.full((64, 64, 3), 200, np.uint8)
    K = np.array([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]])
    depth, extr, images = [], [], []
    for i in range(n_views):
        a = 2 * np.pi * i / n_views
        T = look_at(np.array([20 * np.cos(a), 20 * np.sin(a), 25.0]), np.zeros(3))
        img, d = render_plane(tex, 400.0, K, T, max(h, w))
        depth.append(d[:h, :w])
        images.append(img[:h, :w].transpose(2, 0, 1) / 255.0)
        extr.append(np.linalg.inv(T)[:3])
    extr = np.array(extr)
    pose = extri_intri_to_pose_encoding(extr, np.repeat(K[None], n_views, 0), (h, w))
    return np.array(depth)[..., None], pose, np.array(images), K


def test_vggt_outputs_to_cloud_recovers_geometry_and_applies_confidence():
    depth, pose, images, K = _vggt_like_plane()
    _, intr = pose_encoding_to_extri_intri(pose, depth.shape[1:3])
    np.testing.assert_allclose(intr[0], K, atol=1e-9)
    conf = np.full(depth.shape[:3], 10.0, np.float32)
    conf[:, :10] = 2.0  # top rows are low-confidence
    cloud = vggt_outputs_to_cloud(
        depth, conf, pose, images, conf_threshold=5.0, pixel_center=0.5
    )  # the test renders with centres at +0.5
    s, h, w, _ = depth.shape
    assert len(cloud) == s * (h - 10) * w
    assert np.abs(cloud.xyz[:, 2]).max() < 1e-3  # back on the plane z = 0
    assert cloud.rgb.shape == (len(cloud), 3) and (cloud.conf >= 5.0).all()
    half = vggt_outputs_to_cloud(
        depth,
        np.random.default_rng(0).random(conf.shape) * 10 + 1,
        pose,
        conf_threshold=0.0,
        conf_percentile=50.0,
    )
    assert abs(len(half) - s * h * w / 2) < 0.01 * s * h * w


def test_vggt_chunks_are_merged_at_one_scale():
    depth, pose, images, _ = _vggt_like_plane(n_views=5)
    conf = np.full(depth.shape[:3], 10.0, np.float32)
    sel = [0, 3, 4]  # second chunk (frames 0, 3, 4) predicted at half scale
    scaled = pose[sel].copy()
    scaled[:, :3] *= 0.5
    chunks = [
        {"depth": depth[:3, ..., 0], "depth_conf": conf[:3], "pose_enc": pose[:3]},
        {"depth": depth[sel, ..., 0] * 0.5, "depth_conf": conf[sel], "pose_enc": scaled},
    ]
    merged = merge_chunks(chunks, conf_threshold=5.0)
    np.testing.assert_allclose(merged["depth"], depth[..., 0], rtol=1e-5)
    np.testing.assert_allclose(merged["pose_enc"], pose, atol=1e-6)


def test_vggt_backend_without_package_names_the_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_vggt(name, *args, **kwargs):
        if name.startswith("vggt"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vggt)
    backend = build_backend("vggt")
    with pytest.raises(MissingDependencyError, match="facebookresearch/vggt"):
        backend.check()


def test_colmap_image_links_survive_an_interrupted_run(tmp_path):
    from geolink.recon.colmap import _link_images

    paths = make_plane_scene(tmp_path / "r", n_views=3, size=32)
    first = _link_images(paths, tmp_path / "w" / "images")
    second = _link_images(paths[:2], tmp_path / "w" / "images")  # stale links are replaced
    assert len(first) == 3 and len(second) == 2
    assert sorted(p.name for p in (tmp_path / "w" / "images").iterdir()) == sorted(second)
    with pytest.raises(DataError, match="image not found"):
        _link_images([tmp_path / "missing.jpg"], tmp_path / "w2")
