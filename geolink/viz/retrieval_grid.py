"""Top-k retrieval grids: one row per query, the query image then its top-k gallery images, each
result framed green (correct location) or red (wrong location); grey when unknown (unlabeled).

Rows come from an evaluator ``topk_<set>.csv`` (columns ``query, rank, gallery, score,
correct``) or are computed from a checkpoint and a retrieval set. The grid is composed in
numpy (exact frame colours and sizes) and written as PNG.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geolink.errors import DataError, GeoLinkError
from geolink.viz.common import check_out, embed_paths, load_encoder, load_rgb, write_png

if TYPE_CHECKING:
    from geolink.data.base import RetrievalSet
    from geolink.models.image_encoder import ImageEncoder

log = logging.getLogger(__name__)

GREEN = (0, 200, 0)
RED = (220, 0, 0)
GREY = (150, 150, 150)
QUERY = (40, 90, 200)
BACKGROUND = (255, 255, 255)
SELECTIONS = ("first", "wrong", "correct", "random")
_GALLERY_COLUMNS = ("gallery", "gallery_item", "gallery item", "item", "gallery_path")


@dataclass
class Hit:
    """One retrieved gallery item: its image, whether it is the query's location, its score."""

    path: Path
    correct: bool | None = None
    score: float | None = None


@dataclass
class RetrievalRow:
    """A query image and its ranked results (best first)."""

    query: Path
    hits: list[Hit] = field(default_factory=list)
    label: str = ""


def grid_size(
    n_rows: int, k: int, thumb: int = 128, frame: int = 6, gap: int = 8
) -> tuple[int, int]:
    """(height, width) in pixels of a grid of ``n_rows`` queries with ``k`` results each.

    Cells are ``thumb + 2 * frame`` wide, separated by ``gap``; an extra ``gap`` separates the
    query column from the results.
    """
    cell = thumb + 2 * frame
    return gap + n_rows * (cell + gap), gap + (k + 1) * (cell + gap) + gap


def _thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """Fit ``image`` (H, W, 3) into a ``size`` x ``size`` square (aspect kept, white padding)."""
    import cv2

    h, w = image.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.full((size, size, 3), BACKGROUND, np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y : y + nh, x : x + nw] = small
    return out


def _caption(tile: np.ndarray, text: str) -> None:
    """Write ``text`` in white on a dark strip at the bottom of ``tile`` (in place), shrunk to
    fit the tile's width."""
    import cv2

    if not text:
        return
    h, w = tile.shape[:2]
    strip = 14 if h >= 64 else 10
    tile[h - strip :] = (tile[h - strip :] * 0.35).astype(np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = 0.35 if h >= 64 else 0.25
    width = cv2.getTextSize(text, font, scale, 1)[0][0]
    if width > w - 6:
        scale *= (w - 6) / width
    cv2.putText(tile, text, (3, h - 4), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _frame_colour(correct: bool | None) -> tuple[int, int, int]:
    return GREY if correct is None else (GREEN if correct else RED)


def retrieval_grid(
    rows: Sequence[RetrievalRow],
    out: str | Path,
    k: int | None = None,
    thumb: int = 128,
    frame: int = 6,
    gap: int = 8,
    query_weather: str | None = None,
    gallery_weather: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Draw ``rows`` (at most ``k`` results each; default the longest row) as a PNG.

    Query frames are blue; result frames green/red/grey. ``query_weather`` /
    ``gallery_weather`` are applied to the query / result images (use them on the drone side
    only). Size: :func:`grid_size`.
    """
    target = check_out(out, overwrite)
    if target is None:
        return Path(out)
    if not rows:
        raise GeoLinkError("retrieval_grid needs at least one query row")
    k = k or max(len(r.hits) for r in rows)
    height, width = grid_size(len(rows), k, thumb, frame, gap)
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    cell = thumb + 2 * frame
    for i, row in enumerate(rows):
        y = gap + i * (cell + gap)
        tiles = [(load_rgb(row.query, query_weather), QUERY, f"q {row.label}".strip())]
        for r, hit in enumerate(row.hits[:k]):
            text = f"{r + 1}" + (f" {hit.score:.3f}" if hit.score is not None else "")
            tiles.append((load_rgb(hit.path, gallery_weather), _frame_colour(hit.correct), text))
        for j, (image, colour, text) in enumerate(tiles):
            x = gap + j * (cell + gap) + (gap if j > 0 else 0)
            canvas[y : y + cell, x : x + cell] = colour
            tile = _thumbnail(image, thumb)
            _caption(tile, text)
            canvas[y + frame : y + frame + thumb, x + frame : x + frame + thumb] = tile
    return write_png(canvas, target)


def _parse_bool(value: str, where: str) -> bool | None:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "y", "t"):
        return True
    if v in ("0", "false", "no", "n", "f"):
        return False
    if v in ("", "none", "nan", "-"):
        return None
    raise DataError(f"{where}: 'correct' must be 1/0/true/false, got '{value}'")


def read_topk_csv(path: str | Path, root: str | Path | None = None) -> list[RetrievalRow]:
    """Read an evaluator ``topk_<set>.csv`` (``query, rank, gallery, score, correct``; the
    gallery column may also be named ``gallery_item``/``item``) into rows in file order.

    Relative image paths are resolved against ``root`` when given, else against the current
    folder (where ``geolink eval`` ran) or, failing that, the CSV's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"top-k file not found: {path}")
    bases = [Path(root)] if root else [Path.cwd(), path.parent]
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in (reader.fieldnames or [])]
        gcol = next((c for c in _GALLERY_COLUMNS if c in fields), None)
        if "query" not in fields or gcol is None:
            raise DataError(
                f"{path}: expected columns query, rank, gallery, score, correct; got {fields}"
            )
        rows: dict[str, RetrievalRow] = {}
        ranks: dict[str, list[int]] = {}
        for n, rec in enumerate(reader, start=2):
            rec = {k.strip(): (v or "") for k, v in rec.items() if k}
            q = rec["query"]
            row = rows.setdefault(
                q, RetrievalRow(_resolve(q, bases), label=rec.get("query_label", ""))
            )
            where = f"{path} line {n}"
            score = float(rec["score"]) if rec.get("score", "").strip() else None
            row.hits.append(
                Hit(_resolve(rec[gcol], bases), _parse_bool(rec.get("correct", ""), where), score)
            )
            ranks.setdefault(q, []).append(int(float(rec["rank"])) if rec.get("rank") else n)
    for q, row in rows.items():
        order = np.argsort(ranks[q], kind="stable")
        row.hits = [row.hits[i] for i in order]
    return list(rows.values())


def _resolve(p: str, bases: list[Path]) -> Path:
    path = Path(p)
    if path.is_absolute():
        return path
    for base in bases:
        if (base / path).exists():
            return base / path
    return bases[0] / path


def select_rows(
    rows: Sequence[RetrievalRow], n: int, select: str = "first", seed: int = 0
) -> list[RetrievalRow]:
    """``n`` rows: the first ones, those whose top-1 is wrong (or correct) first, or at random."""
    if select not in SELECTIONS:
        raise GeoLinkError(f"unknown selection '{select}'; expected one of {', '.join(SELECTIONS)}")
    rows = list(rows)
    if select == "random":
        idx = np.random.default_rng(seed).permutation(len(rows))
        rows = [rows[i] for i in idx]
    elif select in ("wrong", "correct"):
        want = select == "correct"
        rows.sort(key=lambda r: 0 if (r.hits and r.hits[0].correct is want) else 1)
    return rows[:n]


def grid_from_csv(
    topk_csv: str | Path,
    out: str | Path,
    n_queries: int = 8,
    k: int = 5,
    select: str = "first",
    root: str | Path | None = None,
    seed: int = 0,
    overwrite: bool = False,
    **draw_kw,
) -> Path:
    """Retrieval grid from an evaluator top-k CSV (see :func:`read_topk_csv`)."""
    rows = select_rows(read_topk_csv(topk_csv, root), n_queries, select, seed)
    return retrieval_grid(rows, out, k=k, overwrite=overwrite, **draw_kw)


def rows_from_embeddings(
    rs: RetrievalSet,
    query_idx: Sequence[int],
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    k: int,
    protocol: str = "paper",
) -> list[RetrievalRow]:
    """Rank the gallery of ``rs`` for the queries ``query_idx`` (embeddings (n, D), (Ng, D)).

    ``protocol="paper"`` leaves out gallery locations that never occur among the queries.
    """
    from geolink.evaluate.metrics import paper_gallery_mask
    from geolink.evaluate.ranking import topk

    if protocol not in ("paper", "official"):
        raise GeoLinkError(f"unknown protocol '{protocol}'; expected paper or official")
    kept = np.arange(len(rs.gallery))
    if protocol == "paper":
        kept = np.flatnonzero(paper_gallery_mask(rs.query_labels, rs.gallery_labels))
    scores, index = topk(query_emb, gallery_emb[kept], k)
    rows = []
    for qi, sc, ix in zip(query_idx, scores, index, strict=True):
        q_label = rs.query_labels[qi]
        hits = []
        for s, j in zip(sc, kept[ix], strict=True):
            correct = None if not q_label else rs.gallery_labels[j] == q_label
            hits.append(Hit(Path(rs.gallery[j]), correct, float(s)))
        rows.append(RetrievalRow(Path(rs.queries[qi]), hits, q_label))
    return rows


def grid_from_checkpoint(
    checkpoint: str | Path | ImageEncoder,
    rs: RetrievalSet,
    out: str | Path,
    n_queries: int = 8,
    k: int = 5,
    select: str = "first",
    weather: str | None = None,
    protocol: str = "paper",
    seed: int = 0,
    batch_size: int = 32,
    overwrite: bool = False,
    **draw_kw,
) -> Path:
    """Embed ``rs`` with a checkpoint, rank, and draw ``n_queries`` rows of top-``k``.

    ``weather`` is applied to the drone side of the set. With ``select="wrong"``/``"correct"``
    every query is embedded to find them; otherwise only the ``n_queries`` drawn.
    """
    target = check_out(out, overwrite)
    if target is None:
        return Path(out)
    encoder = load_encoder(checkpoint)
    q_weather = weather if rs.query_view == "drone" else None
    g_weather = weather if rs.gallery_view == "drone" else None
    if select in ("wrong", "correct"):
        candidates = list(range(len(rs.queries)))
    elif select == "random":
        candidates = sorted(np.random.default_rng(seed).permutation(len(rs.queries))[:n_queries])
    else:
        candidates = list(range(min(n_queries, len(rs.queries))))
    q_emb = embed_paths(encoder, [rs.queries[i] for i in candidates], batch_size, q_weather)
    g_emb = embed_paths(encoder, rs.gallery, batch_size, g_weather)
    rows = rows_from_embeddings(rs, candidates, q_emb, g_emb, k, protocol)
    rows = select_rows(rows, n_queries, "first" if select == "random" else select, seed)
    return retrieval_grid(
        rows,
        target,
        k=k,
        query_weather=q_weather,
        gallery_weather=g_weather,
        overwrite=True,
        **draw_kw,
    )
