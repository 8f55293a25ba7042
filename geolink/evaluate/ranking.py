"""Exact top-k ranking of a gallery for many queries, by inner product, with bounded memory.

Two backends with the same results: ``"torch"`` (query chunks x gallery score blocks; never more
than ``max_elements`` scores alive) and ``"faiss"`` (``IndexFlatIP``, exact; it copies the
gallery). Scores are inner products, i.e. cosine similarities for L2-normalised embeddings.
"""

from __future__ import annotations

import numpy as np
import torch

from geolink.errors import GeoLinkError, MissingDependencyError
from geolink.evaluate.metrics import DEFAULT_MAX_ELEMENTS, check_embedding_pair

BACKENDS = ("torch", "faiss")


def topk(
    query_emb: np.ndarray | torch.Tensor,
    gallery_emb: np.ndarray | torch.Tensor,
    k: int,
    backend: str = "torch",
    chunk: int | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k best gallery items per query.

    query_emb: (Nq, D), gallery_emb: (Ng, D). Returns ``(scores, index)``, both (Nq, min(k, Ng)),
    best first: float32 inner products and int64 gallery indices. ``chunk`` = queries per block
    (default: as many as fit in ``max_elements`` scores); ``device`` for the torch backend.
    """
    if backend not in BACKENDS:
        raise GeoLinkError(f"unknown ranking backend '{backend}'; available: {', '.join(BACKENDS)}")
    q, g = check_embedding_pair(query_emb, gallery_emb)
    k = min(int(k), g.shape[0])
    if k < 1:
        raise GeoLinkError(f"k must be >= 1; got {k}")
    if backend == "faiss":
        return _topk_faiss(q.numpy(), g.numpy(), k, chunk)
    return _topk_torch(q, g, k, chunk or max(1, max_elements // g.shape[0]), device)


def _topk_torch(
    q: torch.Tensor, g: torch.Tensor, k: int, chunk: int, device: str | torch.device | None
) -> tuple[np.ndarray, np.ndarray]:
    dev = torch.device(device) if device is not None else torch.device("cpu")
    g = g.to(dev)
    scores = np.empty((q.shape[0], k), dtype=np.float32)
    index = np.empty((q.shape[0], k), dtype=np.int64)
    with torch.no_grad():
        for s in range(0, q.shape[0], chunk):
            block = q[s : s + chunk].to(dev) @ g.T
            val, idx = torch.topk(block, k, dim=1, largest=True, sorted=True)
            scores[s : s + chunk] = val.cpu().numpy()
            index[s : s + chunk] = idx.cpu().numpy()
    return scores, index


def _topk_faiss(
    q: np.ndarray, g: np.ndarray, k: int, chunk: int | None
) -> tuple[np.ndarray, np.ndarray]:
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - faiss-cpu is a core dependency
        raise MissingDependencyError(
            "the faiss ranking backend needs FAISS: pip install faiss-cpu"
        ) from e
    index = faiss.IndexFlatIP(g.shape[1])
    index.add(np.ascontiguousarray(g, dtype=np.float32))
    step = chunk or q.shape[0]
    out_s = np.empty((q.shape[0], k), dtype=np.float32)
    out_i = np.empty((q.shape[0], k), dtype=np.int64)
    for s in range(0, q.shape[0], step):
        sc, ix = index.search(np.ascontiguousarray(q[s : s + step], dtype=np.float32), k)
        out_s[s : s + step], out_i[s : s + step] = sc, ix
    return out_s, out_i
