"""Retrieval metrics of cross-view geo-localization: R@K, R@1%, AP, SDM@K, meter-level accuracy.

Pure functions: arrays in, floats out, nothing printed. Definitions follow University-1652's
official ``compute_mAP`` (used unchanged by SUES-200, Sample4Geo, CV-Cities and GeoLink):

- the gallery is ranked by inner product (cosine for L2-normalised embeddings), descending; ties
  are broken by gallery order (a stable sort), which makes every result deterministic;
- junk gallery items are removed from the ranking; the positives ("good") of a query are the
  gallery items with its label; ``r_1 < ... < r_n`` are their 0-based ranks;
- CMC[k] = 1 when ``r_1 <= k``; R@K = mean CMC[K-1]; R@1% = mean CMC[round(0.01 * N)] where N is
  the gallery size *before* junk removal (as the official code does);
- AP = sum_i (1/n) * ((i-1)/r_i + i/(r_i+1)) / 2, with (i-1)/r_i read as 1 when r_i = 0
  (the trapezoid rule), i 1-based;
- a query without any positive is a miss (CMC 0, AP 0) and still counts in the mean.

Protocols: ``"paper"`` (Sample4Geo / CV-Cities / GeoLink) makes gallery classes that no query has
junk, e.g. University-1652 drone->satellite ranks 701 of the 951 satellite images; ``"official"``
keeps every gallery item as a distractor (the datasets' own evaluation scripts).

Ranks of positives are computed in query chunks, so memory is O(chunk x N_gallery): with one
positive per query (drone->satellite) the rank is a count of higher scores; otherwise each chunk is
sorted once (stable) and the positives' positions are read off. Results equal the straightforward
per-query loop (``geolink.evaluate.reference``), ties included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geolink.errors import DataError, GeoLinkError
from geolink.utils.geodesy import EARTH_RADIUS_M, haversine_m  # noqa: F401 - re-exported

PROTOCOLS = ("paper", "official")
DEFAULT_KS = (1, 5, 10)
SDM_KS = (1, 3, 5, 10)
SDM_SCALE = 5000.0  # s_i = exp(-5000 * d_i), d_i in degrees (DenseUAV)
# Score-matrix elements per chunk: 2^24 floats = 64 MiB, plus the int64 bins (128 MiB).
DEFAULT_MAX_ELEMENTS = 1 << 24


@dataclass
class PerQuery:
    """Per-query results of a retrieval evaluation.

    first_rank: (Nq,) int64, 0-based rank of the best positive after junk removal; -1 when the
        query has no positive in the gallery.
    ap: (Nq,) float64 average precision in [0, 1] (0 for queries without a positive).
    n_positives: (Nq,) int64 number of positives of each query.
    n_gallery: gallery size before junk removal (used for R@1%).
    n_ranked: gallery size after junk removal.
    gallery_index: (n_ranked,) int64 indices of the ranked (non-junk) gallery items.
    topk_scores / topk_index: (Nq, k) best scores and indices into ``gallery_index`` when
        ``topk=k`` was asked for (computed from the same score blocks), else None.
    """

    first_rank: np.ndarray
    ap: np.ndarray
    n_positives: np.ndarray
    n_gallery: int
    n_ranked: int
    gallery_index: np.ndarray | None = None
    topk_scores: np.ndarray | None = None
    topk_index: np.ndarray | None = None


def check_embeddings(emb: np.ndarray | torch.Tensor, what: str) -> torch.Tensor:
    """Validate (N, D) embeddings and return them as a float32 CPU tensor (no copy if possible)."""
    t = torch.as_tensor(emb)
    if t.ndim != 2:
        raise DataError(f"{what} embeddings must be a 2-D array (N, D); got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise DataError(f"{what} embeddings are empty (0 rows)")
    if not t.is_floating_point():
        raise DataError(f"{what} embeddings must be floating point; got {t.dtype}")
    t = t.float()
    # One reduction first (NaN/inf propagate into the sum); the per-row check only on failure.
    if not torch.isfinite(t.sum(dtype=torch.float64)) and not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).any(1).sum())
        raise DataError(f"{what} embeddings contain NaN or inf in {bad} of {t.shape[0]} rows")
    return t


def encode_labels(
    query_labels: Sequence, gallery_labels: Sequence
) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary labels (str or int; compared as strings) to shared int64 ids."""
    table: dict[str, int] = {}
    q = np.fromiter((table.setdefault(str(x), len(table)) for x in query_labels), np.int64)
    g = np.fromiter((table.setdefault(str(x), len(table)) for x in gallery_labels), np.int64)
    return q, g


def paper_gallery_mask(query_labels: Sequence, gallery_labels: Sequence) -> np.ndarray:
    """(Ng,) bool: gallery items kept by the paper protocol (their class occurs among queries)."""
    q, g = encode_labels(query_labels, gallery_labels)
    return np.isin(g, np.unique(q))


def _chunk_rows(n_gallery: int, max_elements: int) -> int:
    return max(1, min(4096, max_elements // max(1, n_gallery)))


def _positive_ranks(scores: torch.Tensor, pos: torch.Tensor, n_pos: torch.Tensor) -> torch.Tensor:
    """0-based ranks of every positive of each query among the ranked gallery.

    scores: (c, N) float32 over the ranked gallery (junk already removed); pos: (c, N) bool;
    n_pos: (c,) positives per row. Returns (c, P) int64 ranks sorted ascending per row,
    P = max(1, max positives per row), padded with int64 max where a row has fewer positives.
    """
    c = scores.shape[0]
    p_max = max(1, int(n_pos.max()) if c else 0)
    # Stable: tied items keep gallery order. (Cheaper in CPU time than binning every score among
    # the sorted positives with searchsorted, which was tried.)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    hits = torch.gather(pos, 1, order)
    rows, cols = hits.nonzero(as_tuple=True)  # row-major, so ranks ascend within a row
    start = torch.cumsum(n_pos, 0) - n_pos
    ranks = torch.full(
        (c, p_max), torch.iinfo(torch.int64).max, dtype=torch.int64, device=scores.device
    )
    ranks[rows, torch.arange(len(rows), device=scores.device) - start[rows]] = cols
    return ranks


def _single_positive_ranks(scores: torch.Tensor, pidx: torch.Tensor) -> torch.Tensor:
    """Ranks when every query has at most one positive (drone->satellite): the number of gallery
    items scoring higher. scores: (c, N); pidx: (c,) positive index or -1 -> (c, 1) int64."""
    has = pidx >= 0
    idx = pidx.clamp(min=0)[:, None]
    ps = torch.gather(scores, 1, idx)
    ranks = torch.count_nonzero(scores > ps, dim=1)[:, None]
    # Exact ties with the positive: stable order puts tied items with a smaller index first.
    ties = torch.count_nonzero(scores == ps, dim=1) > 1
    rows = (ties & has).nonzero().flatten()
    if len(rows):
        before = torch.arange(scores.shape[1], device=scores.device)[None, :] < idx[rows]
        ranks[rows] += ((scores[rows] == ps[rows]) & before).sum(1, keepdim=True)
    return torch.where(has[:, None], ranks, torch.full_like(ranks, torch.iinfo(torch.int64).max))


def _ap_from_ranks(ranks: torch.Tensor) -> torch.Tensor:
    """Trapezoid AP per row from (c, P) ascending ranks (int64 max = padding) -> (c,) float64."""
    big = torch.iinfo(torch.int64).max
    valid = ranks != big
    n = valid.sum(1).double()
    r = torch.where(valid, ranks, torch.zeros_like(ranks)).double()
    i = torch.arange(ranks.shape[1], dtype=torch.float64, device=ranks.device)
    precision = (i + 1) / (r + 1)
    old = torch.where(r == 0, torch.ones_like(r), i / r.clamp(min=1))
    terms = torch.where(valid, (old + precision) / 2, torch.zeros_like(r))
    return torch.where(n > 0, terms.sum(1) / n.clamp(min=1), torch.zeros_like(n))


def check_embedding_pair(
    query_emb: np.ndarray | torch.Tensor, gallery_emb: np.ndarray | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sides checked by :func:`check_embeddings`, and of one dimension."""
    q = check_embeddings(query_emb, "query")
    g = check_embeddings(gallery_emb, "gallery")
    if q.shape[1] != g.shape[1]:
        raise DataError(f"query dim {q.shape[1]} != gallery dim {g.shape[1]}")
    return q, g


def _checked_inputs(
    query_emb: np.ndarray | torch.Tensor, gallery_emb: np.ndarray | torch.Tensor,
    query_labels: Sequence, gallery_labels: Sequence, protocol: str,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The embeddings as checked tensors; a bad protocol, dimension or label count is named."""
    if protocol not in PROTOCOLS:
        raise GeoLinkError(f"unknown protocol '{protocol}'; expected one of {', '.join(PROTOCOLS)}")
    q, g = check_embedding_pair(query_emb, gallery_emb)
    if len(query_labels) != q.shape[0] or len(gallery_labels) != g.shape[0]:
        raise DataError(
            f"labels do not match embeddings: {len(query_labels)} query labels for {q.shape[0]} "
            f"rows, {len(gallery_labels)} gallery labels for {g.shape[0]} rows"
        )
    return q, g


def positive_ranks(
    query_emb: np.ndarray | torch.Tensor,
    gallery_emb: np.ndarray | torch.Tensor,
    query_labels: Sequence,
    gallery_labels: Sequence,
    protocol: str = "paper",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    topk: int = 0,
    device: str | torch.device | None = None,
) -> PerQuery:
    """Per-query first-positive rank and AP (and, with ``topk=k``, the k best gallery items).

    query_emb: (Nq, D); gallery_emb: (Ng, D) (L2-normalised for cosine ranking);
    query_labels: Nq labels; gallery_labels: Ng labels. See the module docstring for the rules.
    ``device`` (default the CPU) is where scores and ranks are computed; results are NumPy.
    """
    q, g = _checked_inputs(query_emb, gallery_emb, query_labels, gallery_labels, protocol)
    ql, gl = encode_labels(query_labels, gallery_labels)
    n_gallery = g.shape[0]
    keep = np.isin(gl, np.unique(ql)) if protocol == "paper" else np.ones(n_gallery, bool)
    gidx = np.flatnonzero(keep)
    if protocol == "paper":
        g, gl = g[torch.from_numpy(keep)], gl[keep]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    q, g = q.to(dev), g.to(dev)
    glt = torch.from_numpy(gl).to(dev)
    qlt = torch.from_numpy(ql).to(dev)
    nq = q.shape[0]
    first = np.full(nq, -1, dtype=np.int64)
    ap = np.zeros(nq, dtype=np.float64)
    n_labels = int(max(ql.max(), gl.max(initial=-1))) + 1
    npos = np.bincount(gl, minlength=n_labels)[ql].astype(np.int64)
    if g.shape[0] == 0:
        return PerQuery(first, ap, npos, n_gallery, 0, gidx)
    k = min(int(topk), g.shape[0])
    top_s = np.empty((nq, k), np.float32) if k > 0 else None
    top_i = np.empty((nq, k), np.int64) if k > 0 else None
    single = int(npos.max()) <= 1
    if single:  # the gallery index of each query's only positive (-1: none)
        where = np.full(n_labels, -1, dtype=np.int64)
        where[gl] = np.arange(len(gl))
        pidx = torch.from_numpy(where[ql]).to(dev)
    step = _chunk_rows(g.shape[0], max_elements)
    big = torch.iinfo(torch.int64).max
    for s in range(0, nq, step):
        scores = q[s : s + step] @ g.T
        if k > 0:
            val, idx = torch.topk(scores, k, dim=1)
            top_s[s : s + step], top_i[s : s + step] = val.cpu().numpy(), idx.cpu().numpy()
        if single:
            ranks = _single_positive_ranks(scores, pidx[s : s + step])
        else:
            pos = glt[None, :] == qlt[s : s + step, None]
            ranks = _positive_ranks(scores, pos, torch.from_numpy(npos[s : s + step]).to(dev))
        r0 = ranks[:, 0]
        first[s : s + step] = torch.where(r0 == big, torch.full_like(r0, -1), r0).cpu().numpy()
        ap[s : s + step] = _ap_from_ranks(ranks).cpu().numpy()
    return PerQuery(first, ap, npos, n_gallery, int(g.shape[0]), gidx, top_s, top_i)


def summarize(per_query: PerQuery, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """R@K for each K, R@1% and AP (all in percent) from per-query results."""
    nq = len(per_query.first_rank)
    found = per_query.first_rank >= 0
    out: dict[str, float] = {}
    for k in ks:
        out[f"R@{k}"] = 100.0 * float(np.sum(found & (per_query.first_rank < k))) / nq
    # Official: CMC[round(len(gallery) * 0.01)]; Python's round, on the gallery incl. junk.
    idx = round(per_query.n_gallery * 0.01)
    out["R@1%"] = 100.0 * float(np.sum(found & (per_query.first_rank <= idx))) / nq
    out["AP"] = 100.0 * float(per_query.ap.sum()) / nq
    return out


def retrieval_metrics(
    query_emb: np.ndarray | torch.Tensor,
    gallery_emb: np.ndarray | torch.Tensor,
    query_labels: Sequence,
    gallery_labels: Sequence,
    protocol: str = "paper",
    ks: Sequence[int] = DEFAULT_KS,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """University-1652-style retrieval metrics in percent: ``R@1, R@5, R@10, R@1%, AP``.

    query_emb: (Nq, D), gallery_emb: (Ng, D) float arrays (L2-normalised: scores are inner
    products); labels: one per row, any type, compared as strings. ``protocol`` is ``"paper"``
    (gallery classes absent from the queries are junk) or ``"official"`` (kept as distractors).
    ``max_elements`` bounds the query-chunk x gallery score block held in memory; ``device``
    is where it is computed (default the CPU).
    """
    per_query = positive_ranks(
        query_emb, gallery_emb, query_labels, gallery_labels, protocol, max_elements,
        device=device,
    )  # fmt: skip
    return summarize(per_query, ks)


def chance_metrics(
    query_labels: Sequence,
    gallery_labels: Sequence,
    protocol: str = "paper",
    trials: int = 200,
    seed: int = 0,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Expected :func:`retrieval_metrics` of a random ranking on these labels (percent).

    Each trial scores random Gaussian embeddings, which rank every query's gallery in a
    uniformly random order, through the same metric code; the result is the mean over
    ``trials``. It is the floor a trained model has to beat on that retrieval set (with one
    positive among N gallery items, R@1 = 100/N).
    """
    rng = np.random.default_rng(seed)
    total: dict[str, float] = {}
    for _ in range(trials):
        q = rng.standard_normal((len(query_labels), 8)).astype(np.float32)
        g = rng.standard_normal((len(gallery_labels), 8)).astype(np.float32)
        for k, v in retrieval_metrics(q, g, query_labels, gallery_labels, protocol, ks).items():
            total[k] = total.get(k, 0.0) + v / trials
    return total


def _coords(coords: np.ndarray | Sequence, what: str) -> np.ndarray:
    arr = np.asarray(coords, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataError(f"{what} coordinates must be (N, 2) (lat, lon); got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{what} coordinates contain NaN or inf (missing GPS?)")
    return arr


def sdm_at_k(
    topk_index: np.ndarray,
    query_coords: np.ndarray | Sequence,
    gallery_coords: np.ndarray | Sequence,
    ks: Sequence[int] = SDM_KS,
) -> dict[str, float]:
    """DenseUAV's Spatial Distance Metric SDM@K in percent, averaged over queries.

    topk_index: (Nq, Kmax) gallery indices, best first, junk already removed;
    query_coords: (Nq, 2) and gallery_coords: (Ng, 2) as (lat, lon) in degrees.
    SDM@K = sum_i w_i s_i / sum_i w_i over the top K, with d_i the Euclidean distance in degrees,
    s_i = exp(-5000 d_i) and w_i = 1 - (i - 1)/K (i 1-based).
    """
    idx = np.asarray(topk_index, dtype=np.int64)
    qc, gc = _coords(query_coords, "query"), _coords(gallery_coords, "gallery")
    if idx.ndim != 2 or idx.shape[0] != qc.shape[0]:
        raise DataError(f"topk_index must be (Nq={qc.shape[0]}, K); got shape {idx.shape}")
    out = {}
    for k in ks:
        if k > idx.shape[1]:
            raise DataError(f"SDM@{k} needs the top {k}; only {idx.shape[1]} retrieved")
        d = np.linalg.norm(gc[idx[:, :k]] - qc[:, None, :], axis=2)  # (Nq, k)
        w = 1.0 - np.arange(k) / k
        out[f"SDM@{k}"] = 100.0 * float(np.mean((np.exp(-SDM_SCALE * d) * w).sum(1) / w.sum()))
    return out


def meter_accuracy(
    top1_index: np.ndarray,
    query_coords: np.ndarray | Sequence,
    gallery_coords: np.ndarray | Sequence,
    thresholds_m: Sequence[float] = (5, 10, 20, 50, 100),
) -> dict[str, float]:
    """Meter-level accuracy MA@m in percent: share of queries whose top-1 retrieved location lies
    strictly closer than m metres (haversine). top1_index: (Nq,); coords (N, 2) (lat, lon)."""
    idx = np.asarray(top1_index, dtype=np.int64).reshape(-1)
    qc, gc = _coords(query_coords, "query"), _coords(gallery_coords, "gallery")
    if idx.shape[0] != qc.shape[0]:
        raise DataError(f"top1_index has {idx.shape[0]} entries for {qc.shape[0]} queries")
    dist = haversine_m(qc[:, 0], qc[:, 1], gc[idx, 0], gc[idx, 1])
    return {f"MA@{_fmt(m)}m": 100.0 * float(np.mean(dist < m)) for m in thresholds_m}


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    v = [float(x) for x in values]
    if not v:
        return math.nan, math.nan
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, s
