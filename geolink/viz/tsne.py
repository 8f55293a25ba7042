"""t-SNE of drone and satellite embeddings (the paper's Figure 6).

For N locations (default 8), the drone images (stars) and satellite images (crosses) of each
location are embedded by each checkpoint and projected to 2-D with t-SNE (scikit-learn), one
colour per location and one panel per checkpoint. Drone images whose drone->satellite top-1
match is wrong are circled ("false samples" in the paper); the top-1 is searched in the whole
satellite gallery of the retrieval set (paper protocol: gallery locations without drone queries
are left out), not only among the N locations drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geolink.errors import GeoLinkError, MissingDependencyError
from geolink.viz.common import (
    check_out,
    default_label,
    embed_paths,
    load_encoder,
    new_figure,
    save_figure,
)

if TYPE_CHECKING:
    from geolink.data.base import CrossViewDataset, RetrievalSet
    from geolink.models.image_encoder import ImageEncoder

log = logging.getLogger(__name__)


@dataclass
class TsnePanel:
    """One panel: 2-D points (N, 2) with their location, view ("drone"/"satellite") and
    whether the point is a drone query whose top-1 is wrong."""

    title: str
    coords: np.ndarray
    locations: list[str]
    views: list[str]
    wrong: np.ndarray


def tsne_2d(emb: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """Embeddings (N, D) -> t-SNE coordinates (N, 2) float32, deterministic for a seed.

    The perplexity is capped at (N - 1) / 3 so that small sets work (scikit-learn needs
    perplexity < N).
    """
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:  # pragma: no cover - scikit-learn is a core dependency
        raise MissingDependencyError("t-SNE needs scikit-learn: pip install scikit-learn") from e
    x = np.asarray(emb, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 3:
        raise GeoLinkError(f"t-SNE needs at least 3 embeddings (N, D); got shape {x.shape}")
    if not np.isfinite(x).all():
        raise GeoLinkError("t-SNE input has non-finite values (NaN/inf embeddings)")
    perp = float(min(perplexity, max(1.0, (x.shape[0] - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed)
    return tsne.fit_transform(x).astype(np.float32)


def select_locations(
    query_labels: Sequence[str], gallery_labels: Sequence[str], n: int, seed: int = 0
) -> list[str]:
    """``n`` locations with both drone queries and satellite gallery images, chosen with ``seed``
    (all of them when fewer), returned sorted."""
    both = sorted(set(query_labels) & set(gallery_labels) - {""})
    if not both:
        raise GeoLinkError("no location has both query and gallery images to draw")
    if n >= len(both):
        return both
    rng = np.random.default_rng(seed)
    return sorted(both[i] for i in rng.choice(len(both), size=n, replace=False))


def top1_wrong(
    query_emb: np.ndarray,
    query_labels: Sequence[str],
    gallery_emb: np.ndarray,
    gallery_labels: Sequence[str],
    protocol: str = "paper",
) -> np.ndarray:
    """(Nq,) bool: the best-scoring gallery item of each query has another label.

    ``protocol="paper"`` ranks only gallery locations that occur among the queries.
    """
    from geolink.evaluate.metrics import paper_gallery_mask
    from geolink.evaluate.ranking import topk

    keep = np.ones(len(gallery_labels), bool)
    if protocol == "paper":
        keep = paper_gallery_mask(query_labels, gallery_labels)
    elif protocol != "official":
        raise GeoLinkError(f"unknown protocol '{protocol}'; expected paper or official")
    labels = np.asarray(gallery_labels, dtype=object)[keep]
    _, index = topk(query_emb, gallery_emb[keep], 1)
    return labels[index[:, 0]] != np.asarray(query_labels, dtype=object)


def tsne_panel(
    encoder: ImageEncoder,
    rs: RetrievalSet,
    locations: Sequence[str],
    title: str,
    max_drone: int | None = None,
    weather: str | None = None,
    perplexity: float = 30.0,
    seed: int = 0,
    batch_size: int = 32,
    protocol: str = "paper",
) -> TsnePanel:
    """Embed a drone->satellite retrieval set with ``encoder`` and t-SNE the chosen locations.

    ``max_drone`` caps the drone images per location (the first ones, in file order).
    """
    chosen = set(locations)
    per_loc: dict[str, int] = {}
    q_idx = []
    for i, lab in enumerate(rs.query_labels):
        if lab in chosen and (max_drone is None or per_loc.get(lab, 0) < max_drone):
            per_loc[lab] = per_loc.get(lab, 0) + 1
            q_idx.append(i)
    q_emb = embed_paths(encoder, [rs.queries[i] for i in q_idx], batch_size, weather)
    g_emb = embed_paths(encoder, rs.gallery, batch_size)
    q_labels = [rs.query_labels[i] for i in q_idx]
    # Top-1 against every query of the set decides which gallery items count (paper protocol).
    keep = np.ones(len(rs.gallery), bool)
    if protocol == "paper":
        from geolink.evaluate.metrics import paper_gallery_mask

        keep = paper_gallery_mask(rs.query_labels, rs.gallery_labels)
    g_labels_kept = [lab for lab, k in zip(rs.gallery_labels, keep, strict=True) if k]
    wrong_q = top1_wrong(q_emb, q_labels, g_emb[keep], g_labels_kept, protocol="official")
    g_idx = [i for i, lab in enumerate(rs.gallery_labels) if lab in chosen]
    emb = np.concatenate([q_emb, g_emb[g_idx]])
    coords = tsne_2d(emb, perplexity=perplexity, seed=seed)
    return TsnePanel(
        title=title,
        coords=coords,
        locations=q_labels + [rs.gallery_labels[i] for i in g_idx],
        views=["drone"] * len(q_idx) + ["satellite"] * len(g_idx),
        wrong=np.concatenate([wrong_q, np.zeros(len(g_idx), bool)]),
    )


def tsne_figure(
    panels: Sequence[TsnePanel],
    out: str | Path,
    cell_px: int = 480,
    dpi: int = 100,
    overwrite: bool = False,
) -> Path:
    """Draw panels side by side: stars = drone, crosses = satellite, one colour per location,
    blue circles = drone queries with a wrong top-1. PNG size: ``len(panels) * cell_px`` x
    ``cell_px + 60`` (legend row below)."""
    target = check_out(out, overwrite)
    if target is None:
        return Path(out)
    if not panels:
        raise GeoLinkError("tsne_figure needs at least one panel")
    locs = sorted({loc for p in panels for loc in p.locations})
    cmap = _colours(len(locs))
    colour = {loc: cmap[i] for i, loc in enumerate(locs)}
    legend_px = 60
    fig = new_figure(len(panels) * cell_px / dpi, (cell_px + legend_px) / dpi)
    bottom = legend_px / (cell_px + legend_px)
    for i, p in enumerate(panels):
        ax = fig.add_axes(
            [(i + 0.04) / len(panels), bottom + 0.02, 0.92 / len(panels), 0.9 - bottom]
        )
        _scatter(ax, p, colour)
        n_wrong = int(p.wrong.sum())
        n_drone = sum(v == "drone" for v in p.views)
        ax.set_title(f"{p.title} ({n_wrong}/{n_drone} drone top-1 wrong)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    _legend(fig, locs, colour)
    return save_figure(fig, target, dpi=dpi)


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _scatter(ax, p: TsnePanel, colour: dict) -> None:
    views = np.asarray(p.views)
    for loc in sorted(set(p.locations)):
        m = np.asarray(p.locations) == loc
        d, s = m & (views == "drone"), m & (views == "satellite")
        ax.scatter(p.coords[d, 0], p.coords[d, 1], marker="*", s=60, color=colour[loc])
        ax.scatter(p.coords[s, 0], p.coords[s, 1], marker="x", s=70, lw=2.2, color=colour[loc])
    w = p.wrong
    ax.scatter(
        p.coords[w, 0], p.coords[w, 1], marker="o", s=220, facecolors="none",
        edgecolors="blue", linewidths=1.4,
    )  # fmt: skip


def _legend(fig, locs: list[str], colour: dict) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="s", color=colour[loc], label=loc) for loc in locs]
    handles += [
        Line2D([], [], ls="", marker="*", color="grey", ms=9, label="drone"),
        Line2D([], [], ls="", marker="x", color="grey", ms=8, mew=2, label="satellite"),
        Line2D([], [], ls="", marker="o", mfc="none", mec="blue", ms=10, label="top-1 wrong"),
    ]
    ncol = min(len(handles), 6)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False)


def tsne_from_checkpoints(
    data: CrossViewDataset | RetrievalSet,
    checkpoints: Sequence[str | Path | ImageEncoder],
    out: str | Path,
    labels: Sequence[str] | None = None,
    n_locations: int = 8,
    max_drone: int | None = None,
    weather: str | None = None,
    perplexity: float = 30.0,
    seed: int = 0,
    batch_size: int = 32,
    protocol: str = "paper",
    overwrite: bool = False,
) -> Path:
    """Figure 6 for a dataset's drone->satellite set (or a given retrieval set): one t-SNE panel
    per checkpoint over the same ``n_locations`` locations."""
    target = check_out(out, overwrite)
    if target is None:
        return Path(out)
    rs = data if hasattr(data, "queries") else data.eval_sets("drone2satellite")[0]
    if rs.query_view and rs.query_view != "drone":
        raise GeoLinkError(
            f"t-SNE expects a drone->satellite set; '{rs.name}' has {rs.query_view} queries"
        )
    labels = list(labels) if labels else [default_label(c, i) for i, c in enumerate(checkpoints)]
    if len(labels) != len(checkpoints):
        raise GeoLinkError(f"{len(labels)} labels for {len(checkpoints)} checkpoints")
    locations = select_locations(rs.query_labels, rs.gallery_labels, n_locations, seed)
    log.info("t-SNE over %d locations: %s", len(locations), ", ".join(locations))
    panels = [
        tsne_panel(
            load_encoder(c),
            rs,
            locations,
            title,
            max_drone=max_drone,
            weather=weather,
            perplexity=perplexity,
            seed=seed,
            batch_size=batch_size,
            protocol=protocol,
        )  # fmt: skip
        for c, title in zip(checkpoints, labels, strict=True)
    ]
    return tsne_figure(panels, target, overwrite=True)
