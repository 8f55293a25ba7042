"""Point-cloud files (PLY, COLMAP models) and the shared post-processing."""

import struct

import numpy as np
import pytest
import torch

from geolink.errors import DataError
from geolink.models.point_ops import farthest_point_sample
from geolink.recon.pointcloud import (
    DegenerateCloudError,
    PointCloud,
    PostprocessConfig,
    farthest_point_indices,
    filter_colmap_points,
    normalize_unit_sphere,
    postprocess,
    read_colmap_points,
    read_ply,
    statistical_outlier_mask,
    write_ply,
)

POINTS3D_TXT = """# 3D point list with one line of data per point:
#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)
# Number of points: 3, mean track length: 2.3333333333333335
1 1.0 2.0 3.0 255 0 0 0.5 1 10 2 20
2 -1.5 0.25 4.0 0 255 0 3.5 1 11 2 21 3 5
3 0.0 0.0 -2.0 0 0 255 0.1 1 12
"""


def _points3d_bin(points):
    out = struct.pack("<Q", len(points))
    for pid, xyz, rgb, err, track in points:
        out += struct.pack("<Q3d3BdQ", pid, *xyz, *rgb, err, len(track))
        for image_id, idx in track:
            out += struct.pack("<II", image_id, idx)
    return out


def test_ply_roundtrip_binary_with_colors(tmp_path):
    xyz = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    rgb = np.random.default_rng(1).integers(0, 256, (50, 3)).astype(np.uint8)
    write_ply(tmp_path / "a.ply", xyz, rgb)
    cloud = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(cloud.xyz, xyz)
    np.testing.assert_array_equal(cloud.rgb, rgb)
    assert not list(tmp_path.glob(".a.*"))  # atomic write left no temp file


def test_ply_ascii_is_read(tmp_path):
    text = "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
    text += "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
    text += "end_header\n1 2 3 10 20 30\n-1 0.5 0 0 0 255\n"
    (tmp_path / "b.ply").write_text(text)
    cloud = read_ply(tmp_path / "b.ply")
    np.testing.assert_allclose(cloud.xyz, [[1, 2, 3], [-1, 0.5, 0]])
    np.testing.assert_array_equal(cloud.rgb, [[10, 20, 30], [0, 0, 255]])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a ply at all", "not a PLY file"),
        (
            b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\n"
            b"property float y\nproperty float z\nend_header\n" + b"\0" * 12,
            "truncated",
        ),
        (
            b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
            b"end_header\n1 2\n",
            "lacks x/y/z",
        ),
        (
            b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
            b"property float z\nend_header\n1 2 oops\n",
            "malformed ASCII",
        ),
    ],
)
def test_corrupt_ply_gives_clear_error(tmp_path, content, message):
    (tmp_path / "bad.ply").write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        read_ply(tmp_path / "bad.ply")
    assert "bad.ply" in str(e.value)


def test_missing_ply(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_ply(tmp_path / "none.ply")


def test_colmap_points3d_txt(tmp_path):
    (tmp_path / "points3D.txt").write_text(POINTS3D_TXT)
    cloud = read_colmap_points(tmp_path)  # the folder form
    np.testing.assert_allclose(cloud.xyz, [[1, 2, 3], [-1.5, 0.25, 4], [0, 0, -2]])
    np.testing.assert_array_equal(cloud.rgb[1], [0, 255, 0])
    np.testing.assert_array_equal(cloud.info["track_length"], [2, 3, 1])
    np.testing.assert_allclose(cloud.info["error"], [0.5, 3.5, 0.1])
    kept = filter_colmap_points(cloud, min_track_length=2, max_reproj_error=2.0)
    np.testing.assert_allclose(kept.xyz, [[1, 2, 3]])  # point 2: error, point 3: track


def test_colmap_points3d_bin_matches_txt(tmp_path):
    pts = [
        (1, (1.0, 2.0, 3.0), (255, 0, 0), 0.5, [(1, 10), (2, 20)]),
        (2, (-1.5, 0.25, 4.0), (0, 255, 0), 3.5, [(1, 11), (2, 21), (3, 5)]),
        (3, (0.0, 0.0, -2.0), (0, 0, 255), 0.1, [(1, 12)]),
    ]
    (tmp_path / "points3D.bin").write_bytes(_points3d_bin(pts))
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "points3D.txt").write_text(POINTS3D_TXT)
    b, t = read_colmap_points(tmp_path / "points3D.bin"), read_colmap_points(tmp_path / "t")
    np.testing.assert_allclose(b.xyz, t.xyz)
    np.testing.assert_array_equal(b.rgb, t.rgb)
    np.testing.assert_array_equal(b.info["track_length"], t.info["track_length"])


def test_corrupt_colmap_models(tmp_path):
    good = _points3d_bin([(1, (1.0, 2.0, 3.0), (1, 2, 3), 0.5, [(1, 1), (2, 2)])])
    (tmp_path / "points3D.bin").write_bytes(good[:-5])
    with pytest.raises(DataError, match="truncated COLMAP points3D.bin"):
        read_colmap_points(tmp_path / "points3D.bin")
    (tmp_path / "points3D.txt").write_text("# header\n1 1.0 2.0 3.0 255 0 0\n")
    with pytest.raises(DataError, match=r"points3D.txt:2: expected"):
        read_colmap_points(tmp_path / "points3D.txt")
    (tmp_path / "points3D.txt").write_text("1 1.0 nan? 3.0 255 0 0 0.5 1 2\n")
    with pytest.raises(DataError, match="non-numeric"):
        read_colmap_points(tmp_path / "points3D.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no COLMAP points3D"):
        read_colmap_points(tmp_path / "empty")


def test_fps_hand_case_and_parity_with_point_ops():
    line = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [10, 0, 0]], np.float32)
    # start at 0; farthest is 10 (idx 3); then min-distances 1 -> 1, 2 -> 2: pick idx 2
    np.testing.assert_array_equal(farthest_point_indices(line, 3), [0, 3, 2])
    xyz = np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32)
    ref = farthest_point_sample(torch.from_numpy(xyz)[None], 256)[0].numpy()
    np.testing.assert_array_equal(farthest_point_indices(xyz, 256), ref)


def test_normalize_unit_sphere_hand_case():
    out, centre, scale = normalize_unit_sphere(np.array([[0.0, 0, 0], [2, 0, 0], [1, 1, 0]]))
    np.testing.assert_allclose(centre, [1, 1 / 3, 0])
    assert scale == pytest.approx(np.sqrt(1 + 1 / 9))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1).max(), 1.0, rtol=1e-6)


def test_statistical_outlier_mask_removes_far_points():
    rng = np.random.default_rng(0)
    xyz = np.concatenate([rng.normal(size=(500, 3)), [[40, 40, 40], [-50, 0, 0]]])
    mask = statistical_outlier_mask(xyz, k=8, std_ratio=2.0)
    assert not mask[-1] and not mask[-2]
    assert mask[:500].mean() > 0.95


def test_postprocess_exact_count_unit_ball_deterministic():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(5000, 3)) * [30, 20, 5] + [100, -40, 7]
    xyz[:10] = np.nan
    xyz = np.concatenate([xyz, [[1e4, 1e4, 1e4]]])  # one gross outlier
    cloud = PointCloud(xyz, rng.integers(0, 256, (len(xyz), 3)))
    conf = PostprocessConfig(num_points=256)
    out, stats = postprocess(cloud, conf)
    out2, _ = postprocess(cloud, conf)
    assert out.xyz.shape == (256, 3) and out.rgb.shape == (256, 3)
    np.testing.assert_array_equal(out.xyz, out2.xyz)
    assert np.linalg.norm(out.xyz, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(out.xyz.mean(0), 0, atol=1e-5)
    assert stats["points_raw"] == 5001 and stats["points_finite"] == 4991
    assert stats["points_filtered"] < 4991  # the outlier (at least) went
    assert stats["scale"] < 1000  # so the cloud was not scaled by the outlier
    assert not stats["padded"]


def test_postprocess_pads_small_and_rejects_degenerate():
    xyz = np.random.default_rng(0).normal(size=(100, 3))
    out, stats = postprocess(PointCloud(xyz), PostprocessConfig(num_points=256, min_points=50))
    assert out.xyz.shape == (256, 3) and stats["padded"]
    assert len(np.unique(out.xyz, axis=0)) <= 100
    with pytest.raises(DegenerateCloudError, match="too few points"):
        postprocess(PointCloud(xyz[:20]), PostprocessConfig(num_points=256, min_points=50))
    with pytest.raises(DegenerateCloudError, match="coincide"):
        postprocess(
            PointCloud(np.ones((80, 3))),
            PostprocessConfig(num_points=64, min_points=8, outlier_std_ratio=0),
        )


def test_rotation_to_z_and_up_estimate_in_a_rotated_frame():
    from geolink.recon.pointcloud import estimate_up, rotation_to_z

    rng = np.random.default_rng(0)
    ground = np.c_[rng.uniform(-50, 50, (400, 2)), rng.normal(0, 1, 400)]  # flat, up = +z
    a = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    cams = np.c_[60 * np.cos(a), 60 * np.sin(a), np.full(8, 80.0)]
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R = q * np.sign(np.linalg.det(q))  # a random proper rotation: the "SfM frame"
    for centres, source in ((cams @ R.T, "cameras"), (None, "points")):
        up, src = estimate_up(ground @ R.T, centres)
        assert src == source
        assert abs(up @ (R @ [0, 0, 1])) > 0.999
    up, _ = estimate_up(ground @ R.T, cams @ R.T)
    np.testing.assert_allclose(up, R @ [0, 0, 1], atol=1e-3)  # sign: towards the cameras
    np.testing.assert_allclose(rotation_to_z(up) @ up, [0, 0, 1], atol=1e-12)
    cloud = PointCloud(
        ground @ R.T, info={"camera_centers": {str(i): c for i, c in enumerate(cams @ R.T)}}
    )
    out, stats = postprocess(cloud, PostprocessConfig(num_points=128))
    assert stats["up_from"] == "cameras"
    assert out.xyz[:, 2].std() < 0.1 * out.xyz[:, 0].std()  # flat again in the xy plane
