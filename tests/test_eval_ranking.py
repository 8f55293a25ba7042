"""Ranking backends: exact top-k, torch chunks vs FAISS vs a full sort."""

import numpy as np
import pytest

from geolink.errors import GeoLinkError
from geolink.evaluate.ranking import topk


def _emb(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_topk_hand_computed():
    g = np.eye(4, dtype=np.float32)
    q = np.array([[0.1, 0.9, 0.3, 0.5], [0.7, 0.0, 0.2, 0.6]], dtype=np.float32)
    for backend in ("torch", "faiss"):
        scores, index = topk(q, g, 3, backend=backend)
        assert index.tolist() == [[1, 3, 2], [0, 3, 2]]
        np.testing.assert_allclose(scores, [[0.9, 0.5, 0.3], [0.7, 0.6, 0.2]], rtol=1e-6)


@pytest.mark.parametrize("chunk", [None, 7])
def test_torch_and_faiss_agree_with_full_sort(chunk):
    q, g = _emb(50, 32, 0), _emb(400, 32, 1)
    full = np.argsort(-(q @ g.T), axis=1, kind="stable")[:, :10]
    st, it = topk(q, g, 10, backend="torch", chunk=chunk)
    sf, i_f = topk(q, g, 10, backend="faiss", chunk=chunk)
    np.testing.assert_array_equal(it, full)
    np.testing.assert_array_equal(i_f, full)
    np.testing.assert_allclose(st, sf, atol=1e-5)
    assert (np.diff(st, axis=1) <= 0).all()


def test_topk_clamps_k_and_rejects_bad_backend():
    q, g = _emb(3, 8, 2), _emb(5, 8, 3)
    s, i = topk(q, g, 100, max_elements=4)
    assert s.shape == i.shape == (3, 5)
    assert sorted(i[0].tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(GeoLinkError, match="available"):
        topk(q, g, 1, backend="annoy")


def test_metrics_topk_matches_ranking_topk():
    from geolink.evaluate.metrics import positive_ranks

    q, g = _emb(30, 16, 4), _emb(200, 16, 5)
    ql = np.arange(30) % 7
    gl = np.arange(200) % 9  # classes 7, 8 are junk under the paper protocol
    pq = positive_ranks(q, g, ql, gl, "paper", max_elements=500, topk=5)
    assert pq.gallery_index.tolist() == [i for i in range(200) if i % 9 < 7]
    s, i = topk(q, g[pq.gallery_index], 5)
    np.testing.assert_array_equal(pq.topk_index, i)
    np.testing.assert_allclose(pq.topk_scores, s, rtol=1e-6)
