"""Evaluate a 2D encoder on a dataset: every retrieval set, both directions, weather conditions.

Writes ``out_dir/metrics.json`` (a list of records, see :func:`evaluate`) and, per set and
condition, ``out_dir/topk_<set>[_<condition>].csv`` (the top-k gallery items of every query).
Records already in ``metrics.json`` are kept and not recomputed unless ``overwrite=True``; each
record names its ``source`` (model sha256, dataset, root), and a file holding another source is
refused (``ConfigError``) rather than mixed.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from geolink.errors import ConfigError, DataError
from geolink.evaluate.config import CLEAN, EvalConfig
from geolink.evaluate.config import resolve as resolve_eval
from geolink.evaluate.embed import embed_images
from geolink.evaluate.metrics import (
    meter_accuracy,
    positive_ranks,
    sdm_at_k,
    summarize,
)
from geolink.evaluate.ranking import topk
from geolink.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
SDM_KS = (1, 3, 5, 10)


def _direction(set_name: str) -> str:
    return set_name.split("@", 1)[0]


def _views(rs: Any) -> tuple[str, str]:
    qv, gv = getattr(rs, "query_view", ""), getattr(rs, "gallery_view", "")
    if not qv or not gv:
        d = _direction(rs.name)
        qv, gv = ("satellite", "drone") if d.startswith("satellite") else ("drone", "satellite")
    return qv, gv


def _record_key(rec: dict) -> tuple[str, str, str]:
    return rec["set"], rec["condition"], rec["protocol"]


def load_records(path: str | Path) -> list[dict]:
    """Records of a ``metrics.json`` (a run's evaluation file)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read evaluation records ({e})") from e
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of evaluation records")
    return data


class _Embedder:
    """Memoises embeddings within one retrieval set (the satellite side is shared by all weather
    conditions); the disk cache covers reuse across sets and runs."""

    def __init__(self, encoder: nn.Module, **kwargs: Any):
        self.encoder, self.kwargs = encoder, kwargs
        self.memo: dict[tuple, np.ndarray] = {}
        self.by_digest: dict[str, np.ndarray] = {}

    def __call__(self, paths: Sequence[Path], weather: str | None, desc: str) -> np.ndarray:
        key = (tuple(str(p) for p in paths), weather)
        if key not in self.memo:
            self.memo[key] = self._embed(paths, weather, desc)
        return self.memo[key]

    def _embed(self, paths: Sequence[Path], weather: str | None, desc: str) -> np.ndarray:
        """Byte-identical files are embedded once, across the retrieval sets of this call too
        (University-1652-style test splits store the same drone images as queries and as
        gallery). Weather is keyed by path, so copies under weather stay separate."""
        if weather is not None:
            return embed_images(self.encoder, paths, weather=weather, desc=desc, **self.kwargs)
        digests = [_file_digest(Path(p)) for p in paths]
        todo = {d: p for d, p in zip(digests, paths, strict=True) if d not in self.by_digest}
        if todo:
            emb = embed_images(self.encoder, list(todo.values()), desc=desc, **self.kwargs)
            self.by_digest.update(zip(todo, emb, strict=True))
        return np.stack([self.by_digest[d] for d in digests])


def _file_digest(path: Path) -> str:
    import hashlib

    try:
        return hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest()
    except OSError:
        return f"unreadable:{path}"  # embed_images reports it (or skips it) by its path


def _coords_array(coords: Sequence | None) -> np.ndarray | None:
    if not coords or any(c is None for c in coords):
        return None
    return np.asarray(coords, dtype=np.float64)


def evaluate_set(
    rs: Any,
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    protocol: str = "paper",
    k: int = 10,
    backend: str = "torch",
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics of one retrieval set from its embeddings.

    Returns (metrics in percent, details) where details holds the kept gallery indices
    ("gallery_index", (Ng',)), the top-k ("scores", "index" into the kept gallery, (Nq, k)) and
    the gallery sizes. Geo-tagged sets also get SDM@K and MA@m.
    """
    kk = max(k, max(SDM_KS))
    per_query = positive_ranks(
        query_emb, gallery_emb, rs.query_labels, rs.gallery_labels, protocol,
        topk=kk if backend == "torch" else 0,  # torch: top-k from the same score blocks
    )  # fmt: skip
    gidx = per_query.gallery_index
    if len(gidx) == 0:
        raise DataError(f"{rs.name}: no gallery item shares a label with the queries")
    if backend == "torch":
        scores, index = per_query.topk_scores, per_query.topk_index
    else:
        scores, index = topk(query_emb, gallery_emb[gidx], kk, backend=backend)
    metrics = summarize(per_query)
    qc, gc = _coords_array(rs.query_coords), _coords_array(rs.gallery_coords)
    if qc is not None and gc is not None:
        ks = [kk for kk in SDM_KS if kk <= index.shape[1]]  # tiny galleries: fewer K
        metrics.update(sdm_at_k(index, qc, gc[gidx], ks))
        metrics.update(meter_accuracy(index[:, 0], qc, gc[gidx]))
    details = {
        "gallery_index": gidx,
        "scores": scores[:, :k],
        "index": index[:, :k],
        "n_gallery": int(len(gidx)),
        "n_gallery_total": int(len(rs.gallery_labels)),
    }
    return metrics, details


def write_topk_csv(path: str | Path, rs: Any, details: dict[str, Any]) -> Path:
    """``query, rank, gallery, score, correct, query_label, gallery_label`` (rank 1-based)."""
    gidx = details["gallery_index"]
    # surrogateescape: file names that are not valid UTF-8 are written back as their raw bytes
    with atomic_path(path) as tmp, open(tmp, "w", newline="", errors="surrogateescape") as f:
        w = csv.writer(f)
        w.writerow(["query", "rank", "gallery", "score", "correct", "query_label", "gallery_label"])
        for qi, (row_s, row_i) in enumerate(zip(details["scores"], details["index"], strict=True)):
            ql = rs.query_labels[qi]
            for r, (s, gi) in enumerate(zip(row_s, row_i, strict=True)):
                g = int(gidx[gi])
                gl = rs.gallery_labels[g]
                w.writerow(
                    [rs.queries[qi], r + 1, rs.gallery[g], f"{s:.6f}", int(gl == ql), ql, gl]
                )
    return Path(path)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)


def average_records(records: list[dict]) -> list[dict]:
    """``<direction>@avg`` records: the mean over sets named ``<direction>@<x>`` (SUES-200
    heights, synthetic regions), per condition and protocol, when there are at least two."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        if "@" in rec["set"] and not rec["set"].endswith("@avg"):
            key = (rec["dataset"], rec["direction"], rec["condition"], rec["protocol"])
            groups.setdefault(key, []).append(rec)
    out = []
    for (dataset, direction, condition, protocol), recs in groups.items():
        if len(recs) < 2:
            continue
        keys = set.intersection(*(set(r["metrics"]) for r in recs))
        metrics = {k: float(np.mean([r["metrics"][k] for r in recs])) for k in sorted(keys)}
        out.append(
            {
                "dataset": dataset,
                "set": f"{direction}@avg",
                "direction": direction,
                "condition": condition,
                "protocol": protocol,
                "metrics": metrics,
                "n_queries": sum(r["n_queries"] for r in recs),
                "n_gallery": sum(r["n_gallery"] for r in recs),
                "averaged": [r["set"] for r in recs],
            }
        )
    return out


def _source(model_key: str, name: str, dataset: Any) -> dict[str, str]:
    """What a record was computed from: the model (checkpoint sha256 or weight fingerprint),
    the dataset's name and its root folder."""
    root = getattr(dataset, "root", None)
    return {
        "model": str(model_key),
        "dataset": name,
        "root": str(Path(root).resolve()) if root is not None else "",
    }


def _reusable(records: list[dict], source: dict, path: Path) -> list[dict]:
    """The records of ``path`` that may be kept next to new ones computed from ``source``.

    Records of another model or dataset root are refused (never mixed silently); records
    without a ``source`` (written before it was recorded) are dropped and recomputed.
    """
    kept, legacy = [], 0
    for r in records:
        if r["set"].endswith("@avg"):
            continue
        old = r.get("source")
        if old is None:
            legacy += 1
            continue
        if old != source:
            diff = ", ".join(
                f"{k} {old.get(k)!r} -> {source[k]!r}" for k in source if old.get(k) != source[k]
            )
            raise ConfigError(
                f"{path} holds results of another evaluation ({diff}); use another --out, or "
                "--overwrite to replace them"
            )
        kept.append(r)
    if legacy:
        log.warning(
            "%s: %d records without a recorded model/dataset: recomputing them", path, legacy
        )
    return kept


def _score(
    rs: Any, q: np.ndarray, g: np.ndarray, cond: str, protocol: str, name: str, source: dict,
    k: int, backend: str, out: Path | None,
) -> dict:  # fmt: skip
    """One record: the metrics of retrieval set ``rs`` under ``cond`` and ``protocol`` (and its
    top-k CSV in ``out``)."""
    metrics, details = evaluate_set(rs, q, g, protocol, k=k, backend=backend)
    if details["n_gallery"] < 2:
        log.warning(
            "%s %s: the gallery has %d item(s), so R@1 is trivially %.0f; are "
            "location folders empty? (geolink data summary lists them)",
            name, rs.name, details["n_gallery"], metrics["R@1"],
        )  # fmt: skip
    log.info("%s %s [%s, %s]: R@1 %.2f AP %.2f", name, rs.name, cond, protocol,
             metrics["R@1"], metrics["AP"])  # fmt: skip
    if out is not None:
        suffix = "" if cond == CLEAN else f"_{cond}"
        suffix += "" if protocol == "paper" else f"_{protocol}"
        write_topk_csv(out / f"topk_{_safe(rs.name)}{suffix}.csv", rs, details)
    return {
        "dataset": name,
        "set": rs.name,
        "direction": _direction(rs.name),
        "condition": cond,
        "protocol": protocol,
        "metrics": metrics,
        "n_queries": len(rs.queries),
        "n_gallery": details["n_gallery"],
        "n_gallery_total": details["n_gallery_total"],
        "source": source,
    }


def evaluate(
    encoder: nn.Module,
    dataset: Any,
    conf: EvalConfig | Mapping[str, Any] | Sequence[Any] | None = None,
    out_dir: str | Path | None = None,
    *,
    dataset_name: str | None = None,
    cache_dir: str | Path | None = None,
    model_key: str | None = None,
    overwrite: bool = False,
    trunk_cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``encoder`` on every retrieval set of ``dataset`` (a ``CrossViewDataset``).

    ``conf``: an :class:`~geolink.evaluate.config.EvalConfig` or its options (directions, clean
    and/or weather conditions applied to drone images only, protocols, batch size, ...).
    Writes (when ``out_dir`` is given) ``metrics.json``: a list of records ``{"dataset", "set",
    "direction", "condition", "protocol", "metrics": {"R@1", "R@5", "R@10", "R@1%", "AP",
    ["SDM@K", "MA@m"]}, "n_queries", "n_gallery", "n_gallery_total", "source"}`` plus ``@avg``
    records, and the top-k CSVs. Records already there (of the same ``source``: model and
    dataset) are kept; an evaluation folder gathers the records of several calls.
    ``trunk_cache_dir``: share the frozen trunk's activations between models that have the same
    frozen trunk (see :func:`geolink.evaluate.embed.embed_images`).
    Returns ``{"records": [...], "metrics_path": path or None}``.
    """
    cfg = resolve_eval(conf)
    name = dataset_name or getattr(dataset, "name", type(dataset).__name__)
    out = Path(out_dir) if out_dir is not None else None
    metrics_path = out / METRICS_FILE if out is not None else None
    if model_key is None:
        from geolink.evaluate.embed import model_fingerprint

        model_key = model_fingerprint(encoder)  # once, not per image list
    source = _source(model_key, name, dataset)
    existing: list[dict] = []
    if metrics_path is not None and metrics_path.is_file() and not overwrite:
        existing = _reusable(load_records(metrics_path), source, metrics_path)
    embedder = _Embedder(
        encoder,
        batch_size=cfg.batch_size,
        device=cfg.device,
        cache_dir=cache_dir,
        model_key=model_key,
        num_workers=cfg.workers,
        trunk_cache_dir=trunk_cache_dir,
    )
    sets = dataset.eval_sets(str(cfg.direction))
    if not sets:
        raise DataError(f"dataset '{name}' has no evaluation sets for direction '{cfg.direction}'")
    records = list(existing)
    for rs in sets:
        if not rs.labeled:
            log.warning("%s: unlabeled queries; skipped (retrieval-only set)", rs.name)
            continue
        _evaluate_set(rs, cfg, embedder, records, _Target(name, source, out, metrics_path))
    records += average_records(records)
    if metrics_path is not None:
        atomic_write_json(metrics_path, records)
    return {"records": records, "metrics_path": str(metrics_path) if metrics_path else None}


@dataclass
class _Target:
    """Where an evaluation's records go and what they name as their origin."""

    name: str
    source: dict[str, str]
    out: Path | None
    metrics_path: Path | None


def _evaluate_set(
    rs: Any, cfg: EvalConfig, embedder: _Embedder, records: list[dict], target: _Target
) -> None:
    """Append the records of retrieval set ``rs`` still missing from ``records``, for every
    condition and protocol of ``cfg``; ``metrics.json`` is rewritten after each one."""
    done = {_record_key(r) for r in records}
    qv, gv = _views(rs)
    embedder.memo.clear()  # bounded memory: only this set's embeddings stay in RAM
    for cond in cfg.conditions:
        todo = [p for p in cfg.protocols() if (rs.name, cond, p) not in done]
        if not todo:
            continue
        weather = None if cond == CLEAN else cond
        q = embedder(rs.queries, weather if qv == "drone" else None, f"{rs.name} queries")
        g = embedder(rs.gallery, weather if gv == "drone" else None, f"{rs.name} gallery")
        for p in todo:
            records.append(
                _score(
                    rs,
                    q,
                    g,
                    cond,
                    p,
                    target.name,
                    target.source,
                    cfg.topk,
                    str(cfg.backend),
                    target.out,
                )  # fmt: skip
            )
            if target.metrics_path is not None:  # after every record: a crash loses nothing
                atomic_write_json(target.metrics_path, records + average_records(records))
