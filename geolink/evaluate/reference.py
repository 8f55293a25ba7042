"""A deliberately plain per-query loop of the University-1652 metrics.

It ranks the whole gallery for one query at a time with a stable argsort and walks the positives,
the way the official ``compute_mAP`` does. It is the parity reference for
:func:`geolink.evaluate.metrics.retrieval_metrics` (tests) and the baseline of
``benchmarks/bench_eval.py``; do not use it for real evaluations (it is slow).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def compute_ap_cmc(
    order: np.ndarray, good: np.ndarray, junk: np.ndarray
) -> tuple[float, np.ndarray]:
    """AP and CMC (0/1 vector over the full gallery length) of one query.

    order: (Ng,) gallery indices best first; good / junk: index arrays of positives / junk.
    Returns (0, all-zero CMC) when there is no positive.
    """
    cmc = np.zeros(len(order), dtype=np.int64)
    if len(good) == 0:
        return 0.0, cmc
    order = order[~np.isin(order, junk)]
    rows_good = np.flatnonzero(np.isin(order, good))
    cmc[rows_good[0] :] = 1
    n = len(good)
    ap = 0.0
    for i, r in enumerate(rows_good):
        precision = (i + 1) / (r + 1)
        old_precision = i / r if r != 0 else 1.0
        ap += (old_precision + precision) / 2 / n
    return ap, cmc


def retrieval_metrics_loop(
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    query_labels: Sequence,
    gallery_labels: Sequence,
    protocol: str = "paper",
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Same contract and results as :func:`geolink.evaluate.metrics.retrieval_metrics`."""
    q = np.asarray(query_emb, dtype=np.float32)
    g = np.asarray(gallery_emb, dtype=np.float32)
    ql = np.array([str(x) for x in query_labels])
    gl = np.array([str(x) for x in gallery_labels])
    junk = np.flatnonzero(~np.isin(gl, ql)) if protocol == "paper" else np.array([], np.int64)
    cmc_sum = np.zeros(len(gl), dtype=np.float64)
    ap_sum = 0.0
    for i in range(len(q)):
        score = g @ q[i]
        order = np.argsort(-score, kind="stable")
        ap, cmc = compute_ap_cmc(order, np.flatnonzero(gl == ql[i]), junk)
        ap_sum += ap
        cmc_sum += cmc
    cmc_mean = cmc_sum / len(q)
    out = {f"R@{k}": 100.0 * cmc_mean[min(k, len(gl)) - 1] for k in ks}
    out["R@1%"] = 100.0 * cmc_mean[round(len(gl) * 0.01)]
    out["AP"] = 100.0 * ap_sum / len(q)
    return out
