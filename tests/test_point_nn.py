import torch

from geolink.models.point_nn import PointNN, encode_point_clouds, trig_pos_encoding
from geolink.models.point_ops import farthest_point_sample, gather, knn


def test_fps_picks_distinct_points_and_spreads_them():
    torch.manual_seed(0)
    xyz = torch.rand(2, 200, 3)
    idx = farthest_point_sample(xyz, 50)
    assert idx.shape == (2, 50)
    for row in idx:
        assert len(set(row.tolist())) == 50
    assert (idx[:, 0] == 0).all()
    # the second pick is the point farthest from the first
    d = ((xyz - xyz[:, :1]) ** 2).sum(-1)
    assert torch.equal(idx[:, 1], d.argmax(-1))


def test_knn_matches_brute_force():
    torch.manual_seed(1)
    q, r = torch.rand(2, 7, 3), torch.rand(2, 30, 3)
    idx = knn(q, r, 5)
    for b in range(2):
        for i in range(7):
            d = ((r[b] - q[b, i]) ** 2).sum(-1)
            assert idx[b, i].tolist() == d.argsort()[:5].tolist()


def test_gather_rows():
    x = torch.arange(2 * 4 * 2).view(2, 4, 2)
    idx = torch.tensor([[3, 0], [1, 1]])
    assert gather(x, idx).tolist() == [[[6, 7], [0, 1]], [[10, 11], [10, 11]]]


def test_pos_encoding_layout():
    x = torch.tensor([[0.5, -1.0, 2.0]])
    pe = trig_pos_encoding(x, 12, alpha=1000.0, beta=100.0)  # 2 frequencies per axis
    # axis y (index 1), frequency m=1: u = 100 * -1 / 1000^(1/2)
    u = 100 * -1.0 / 1000**0.5
    assert torch.isclose(pe[0, 4 + 2], torch.tensor(u).sin())
    assert torch.isclose(pe[0, 4 + 3], torch.tensor(u).cos())


def test_point_nn_output_dim_determinism_and_permutation_invariance():
    torch.manual_seed(2)
    pts = torch.randn(3, 1024, 3)
    enc = PointNN()
    a = enc(pts)
    assert a.shape == (3, 1152) and torch.isfinite(a).all()
    torch.testing.assert_close(enc(pts), a, rtol=0, atol=0)
    perm = torch.randperm(1024)
    torch.testing.assert_close(enc(pts[:, perm]), a, rtol=1e-4, atol=1e-4)
    # per-cloud normalisation: a cloud's feature does not depend on its batch neighbours
    torch.testing.assert_close(enc(pts[1:2]), a[1:2], rtol=1e-5, atol=1e-4)
    # different clouds give different features
    assert (a[0] - a[1]).abs().max() > 1e-3


def test_batched_encoding_equals_single():
    torch.manual_seed(3)
    pts = torch.randn(5, 256, 3)
    enc = PointNN(k=16)
    torch.testing.assert_close(
        encode_point_clouds(pts, batch_size=2, encoder=enc), enc(pts), rtol=1e-5, atol=1e-4
    )
