"""Hand-computed cases for the retrieval metrics (University-1652 compute_mAP semantics)."""

import math

import numpy as np
import pytest

from geolink.errors import DataError, GeoLinkError
from geolink.evaluate import chance_metrics, meter_accuracy, retrieval_metrics, sdm_at_k
from geolink.evaluate.metrics import haversine_m, positive_ranks
from geolink.evaluate.reference import retrieval_metrics_loop


def _scores_as_embeddings(scores):
    """Gallery = identity basis, so query rows *are* the score vectors."""
    scores = np.asarray(scores, dtype=np.float32)
    return scores, np.eye(scores.shape[1], dtype=np.float32)


def test_single_positive_official_and_paper():
    q, g = _scores_as_embeddings([[0.9, 0.1, 0.2, 0.3], [0.9, 0.5, 0.8, 0.1], [0.1, 0.2, 0.3, 0.4]])
    ql, gl = ["a", "b", "e"], ["a", "b", "c", "d"]
    # official: q0 rank 0 (AP 1); q1 ranked a, c, b -> rank 2, AP = (0/2 + 1/3)/2; q2 no positive.
    m = retrieval_metrics(q, g, ql, gl, protocol="official")
    assert m["R@1"] == pytest.approx(100 / 3)
    assert m["R@5"] == pytest.approx(200 / 3)
    assert m["R@10"] == pytest.approx(200 / 3)
    assert m["R@1%"] == pytest.approx(100 / 3)  # index round(0.04) = 0
    assert m["AP"] == pytest.approx(100 * (1 + 1 / 6 + 0) / 3)
    # paper: c, d are junk -> q1 ranked a, b -> rank 1, AP = (0/1 + 1/2)/2.
    m = retrieval_metrics(q, g, ql, gl, protocol="paper")
    assert m["R@1"] == pytest.approx(100 / 3)
    assert m["R@5"] == pytest.approx(200 / 3)
    assert m["AP"] == pytest.approx(100 * (1 + 0.25 + 0) / 3)


def test_many_positives_satellite_to_drone():
    labels = ["x", "y", "x", "y", "x", "z"]
    q, g = _scores_as_embeddings([[0.5, 0.9, 0.7, 0.1, 0.2, 0.6], [0.3, 0.2, 0.4, 0.8, 0.1, 0.95]])
    ql = ["x", "y"]
    # official, query x: order y x z x x y -> positives at 1, 3, 4
    ap_x = (0.5 * (0 / 1 + 1 / 2) + 0.5 * (1 / 3 + 2 / 4) + 0.5 * (2 / 4 + 3 / 5)) / 3
    # official, query y: order z y x x y x -> positives at 1, 4
    ap_y = (0.5 * (0 / 1 + 1 / 2) + 0.5 * (1 / 4 + 2 / 5)) / 2
    m = retrieval_metrics(q, g, ql, labels, protocol="official")
    assert m["R@1"] == 0.0
    assert m["R@5"] == 100.0
    assert m["AP"] == pytest.approx(100 * (ap_x + ap_y) / 2)
    # paper, z is junk: x -> positives at 1, 2, 3; y -> positives at 0, 3
    ap_x = (0.5 * (0 / 1 + 1 / 2) + 0.5 * (1 / 2 + 2 / 3) + 0.5 * (2 / 3 + 3 / 4)) / 3
    ap_y = (0.5 * (1 + 1) + 0.5 * (1 / 3 + 2 / 4)) / 2
    m = retrieval_metrics(q, g, ql, labels, protocol="paper")
    assert m["R@1"] == 50.0
    assert m["AP"] == pytest.approx(100 * (ap_x + ap_y) / 2)
    pq = positive_ranks(q, g, ql, labels, protocol="paper")
    assert pq.first_rank.tolist() == [1, 0]
    assert pq.n_positives.tolist() == [3, 2]
    assert (pq.n_gallery, pq.n_ranked) == (6, 5)


def test_ties_break_by_gallery_order():
    q = np.array([[1.0, 1.0]], dtype=np.float32)
    g = np.eye(2, dtype=np.float32)
    assert retrieval_metrics(q, g, ["a"], ["a", "b"], "official")["R@1"] == 100.0
    m = retrieval_metrics(q, g, ["a"], ["b", "a"], "official")
    assert m["R@1"] == 0.0
    assert m["AP"] == pytest.approx(100 * 0.5 * (0 / 1 + 1 / 2))


def test_recall_at_one_percent_uses_python_round_on_full_gallery():
    n = 250  # round(2.5) == 2 (banker's rounding, as the official code)
    scores = np.linspace(1.0, 0.0, n, dtype=np.float32)[None]
    q, g = _scores_as_embeddings(scores)
    for pos, expected in [(2, 100.0), (3, 0.0)]:
        gl = ["n"] * n
        gl[pos] = "a"
        assert retrieval_metrics(q, g, ["a"], gl, "official")["R@1%"] == expected
    # paper: 240 junk items on top; after removal the positive sits at rank 2, and the index is
    # still round(0.01 * 250) = 2 because N counts the junk.
    gl = ["junk"] * 240 + ["n", "n", "a"] + ["n"] * 7
    m = retrieval_metrics(np.repeat(q, 2, axis=0), g, ["a", "n"], gl, "paper")
    # query "a" hits at rank 2 <= 2; query "n" (same scores) at rank 0. With N counted after junk
    # removal (10 items) the index would be round(0.1) = 0 and "a" would miss (50 %).
    assert m["R@1%"] == 100.0
    assert m["R@1"] == 50.0


def test_query_without_positive_counts_as_miss():
    q = np.eye(3, dtype=np.float32)
    m = retrieval_metrics(q, q, ["a", "b", "zz"], ["a", "b", "c"], "official")
    assert m["R@1"] == pytest.approx(200 / 3)
    assert m["AP"] == pytest.approx(200 / 3)


@pytest.mark.parametrize("protocol", ["paper", "official"])
@pytest.mark.parametrize("shape", [(40, 300, 30), (25, 500, 12), (300, 50, 50)])
def test_parity_with_loop_reference(protocol, shape):
    rng = np.random.default_rng(sum(shape))
    nq, ng, ncls = shape
    q = rng.standard_normal((nq, 8)).astype(np.float32)
    g = rng.standard_normal((ng, 8)).astype(np.float32)
    ql, gl = rng.integers(0, ncls, nq), rng.integers(0, ncls + 5, ng)
    ref = retrieval_metrics_loop(q, g, ql, gl, protocol)
    for max_elements in (64, 1 << 24):  # many small chunks and one chunk
        got = retrieval_metrics(q, g, ql, gl, protocol, max_elements=max_elements)
        for key in ref:
            assert got[key] == pytest.approx(ref[key], abs=1e-9), key


def test_parity_with_many_exact_ties():
    rng = np.random.default_rng(3)
    # Small integer embeddings: exact float scores with lots of ties (stable order = gallery order).
    q = rng.integers(0, 3, (30, 3)).astype(np.float32)
    g = rng.integers(0, 3, (200, 3)).astype(np.float32)
    ql = rng.integers(0, 10, 30)
    # many positives per query (sorted-positives path) and one per query (single-positive path)
    for gl in (rng.integers(0, 12, 200), rng.permutation(200)):
        for protocol in ("paper", "official"):
            ref = retrieval_metrics_loop(q, g, ql, gl, protocol)
            got = retrieval_metrics(q, g, ql, gl, protocol, max_elements=500)
            for key in ref:
                assert got[key] == pytest.approx(ref[key], abs=1e-9), key


def test_bad_inputs_raise_user_errors():
    q = np.ones((2, 4), dtype=np.float32)
    with pytest.raises(DataError, match="NaN"):
        retrieval_metrics(np.full((2, 4), np.nan, np.float32), q, ["a", "b"], ["a", "b"])
    with pytest.raises(DataError, match="dim"):
        retrieval_metrics(q, np.ones((2, 3), np.float32), ["a", "b"], ["a", "b"])
    with pytest.raises(DataError, match="labels"):
        retrieval_metrics(q, q, ["a"], ["a", "b"])
    with pytest.raises(GeoLinkError, match="protocol"):
        retrieval_metrics(q, q, ["a", "b"], ["a", "b"], protocol="mine")


def test_chance_metrics_match_the_expected_random_ranking():
    # one positive among N = 4 gallery items, rank r uniform on 0..3:
    # R@1 = 1/4; AP = E[(1[r=0] + 1/(r+1)) / 2] = (1/4 + H_4/4) / 2 = 0.38542
    q, g = ["a", "b", "c", "d"] * 50, ["a", "b", "c", "d"]
    m = chance_metrics(q, g, trials=400, seed=1)
    assert m["R@1"] == pytest.approx(25.0, abs=1.0)
    assert m["AP"] == pytest.approx(38.542, abs=1.0)
    assert m["R@5"] == pytest.approx(100.0)
    # paper protocol: a gallery class no query has is junk, so it cannot lower the floor
    junk = chance_metrics(q, [*g, "x"], trials=400, seed=1)
    assert junk["R@1"] == pytest.approx(25.0, abs=1.0) and junk["R@5"] == pytest.approx(100.0)
    assert chance_metrics(q, [*g, "x"], protocol="official", trials=400, seed=1)["R@1"] < 22


def test_sdm_at_k_hand_computed():
    query = [[0.0, 0.0]]
    gallery = [[0.0, 0.0], [0.0001, 0.0], [0.0, 0.0002]]
    topk = [[0, 1, 2]]
    s1, s2 = math.exp(-0.5), math.exp(-1.0)
    m = sdm_at_k(topk, query, gallery, ks=(1, 2, 3))
    assert m["SDM@1"] == pytest.approx(100.0)
    assert m["SDM@2"] == pytest.approx(100 * (1 + 0.5 * s1) / 1.5)
    assert m["SDM@3"] == pytest.approx(100 * (1 + 2 / 3 * s1 + 1 / 3 * s2) / 2)
    # averaged over queries: a second query whose top-1 is 1e-4 deg away
    m = sdm_at_k([[0, 1, 2], [1, 0, 2]], [[0, 0], [0, 0]], gallery, ks=(1,))
    assert m["SDM@1"] == pytest.approx(100 * (1 + s1) / 2)
    with pytest.raises(DataError, match="top 5"):
        sdm_at_k(topk, query, gallery, ks=(5,))


def test_meter_accuracy_and_haversine():
    one_deg = haversine_m(np.array(0.0), np.array(0.0), np.array(1.0), np.array(0.0))
    assert float(one_deg) == pytest.approx(6378137.0 * math.pi / 180)  # 111,319.49 m
    gallery = [[0.0, 0.0001], [0.0, 0.0]]  # 11.13 m east of the origin, and the origin
    m = meter_accuracy([0, 1], [[0.0, 0.0], [0.0, 0.0]], gallery, thresholds_m=(5, 10, 20))
    assert m == {"MA@5m": 50.0, "MA@10m": 50.0, "MA@20m": 100.0}
