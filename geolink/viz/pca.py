"""PCA feature maps (the paper's Figure 5).

Backbone patch features (B, C, h, w) are projected onto their first three principal components;
each component becomes one colour channel, scaled to [0, 1], and the (h, w, 3) map is upsampled
to the image size and drawn next to the image, one column per checkpoint (e.g. the 2D baseline
vs GeoLink), one row per image and weather condition.

By default the principal axes are fitted on the patches of *all* images of a figure together
(per checkpoint), so colours mean the same thing across the rows of one column: a clean image and
its foggy copy can be compared directly. ``fit="per_image"`` fits each image on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from geolink.errors import GeoLinkError
from geolink.viz.common import (
    check_out,
    default_label,
    load_encoder,
    load_rgb,
    new_figure,
    save_figure,
    to_batch,
)

if TYPE_CHECKING:
    from geolink.models.image_encoder import ImageEncoder

log = logging.getLogger(__name__)

FITS = ("joint", "per_image")


@dataclass
class PCABasis:
    """Principal axes of a set of feature vectors.

    mean: (C,); components: (n, C) orthonormal rows (zero rows where the data has rank < n);
    explained: (n,) fraction of the total variance along each axis.
    """

    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    def project(self, features: np.ndarray) -> np.ndarray:
        """(N, C) -> (N, n) coordinates along the axes."""
        return (features - self.mean) @ self.components.T


def fit_pca(features: np.ndarray, n_components: int = 3) -> PCABasis:
    """Principal axes of ``features`` (N, C) by SVD of the centred data.

    Signs are fixed (the largest-magnitude entry of each axis is positive) so that the same data
    always gives the same colours.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise GeoLinkError(f"PCA needs a non-empty (N, C) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise GeoLinkError("PCA input has non-finite values (NaN/inf features)")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2
    total = var.sum()
    components = np.zeros((n_components, x.shape[1]))
    explained = np.zeros(n_components)
    # Axes with (numerically) zero variance carry no information: keep them as zero rows.
    keep = [i for i in range(min(n_components, len(s))) if total > 0 and var[i] > 1e-12 * total]
    for i in keep:
        v = vt[i]
        components[i] = v if v[np.argmax(np.abs(v))] >= 0 else -v
        explained[i] = var[i] / total
    return PCABasis(mean, components, explained)


def _scale01(proj: np.ndarray, quantile: float) -> np.ndarray:
    """Scale each column of ``proj`` (N, n) to [0, 1] between its q and 1-q quantiles.

    A column with no spread (a constant image, or a missing axis) maps to 0.5.
    """
    lo = np.quantile(proj, quantile, axis=0)
    hi = np.quantile(proj, 1.0 - quantile, axis=0)
    span = hi - lo
    out = np.full_like(proj, 0.5)
    ok = span > 1e-12 * max(1.0, float(np.abs(proj).max(initial=0.0)))
    out[:, ok] = np.clip((proj[:, ok] - lo[ok]) / span[ok], 0.0, 1.0)
    return out


def pca_rgb(
    feature_maps: torch.Tensor | np.ndarray,
    fit: str = "joint",
    quantile: float = 0.01,
    basis: PCABasis | None = None,
) -> np.ndarray:
    """Feature maps (B, C, h, w) -> PCA colour maps (B, h, w, 3), float32 in [0, 1].

    Channel i is the projection on the i-th principal axis of the patch features, scaled to
    [0, 1] between its ``quantile`` and ``1 - quantile`` values (over the whole batch with
    ``fit="joint"``, per image with ``"per_image"``). Pass ``basis`` to reuse fitted axes.
    """
    if fit not in FITS:
        raise GeoLinkError(f"unknown PCA fit '{fit}'; expected one of {', '.join(FITS)}")
    fm = (
        feature_maps.detach().float().cpu().numpy()
        if torch.is_tensor(feature_maps)
        else feature_maps
    )
    fm = np.asarray(fm, dtype=np.float64)
    if fm.ndim != 4:
        raise GeoLinkError(f"feature maps must be (B, C, h, w), got shape {fm.shape}")
    b, c, h, w = fm.shape
    flat = fm.transpose(0, 2, 3, 1).reshape(b, h * w, c)
    if fit == "joint":
        groups = [flat.reshape(b * h * w, c)]
    else:
        groups = list(flat)
    maps = []
    for g in groups:
        proj = (basis or fit_pca(g, 3)).project(g)
        maps.append(_scale01(proj, quantile))
    return np.concatenate(maps).reshape(b, h, w, 3).astype(np.float32)


def upsample(rgb_map: np.ndarray, height: int, width: int, smooth: bool = False) -> np.ndarray:
    """(h, w, 3) float map -> (height, width, 3); nearest neighbour keeps patches visible."""
    import cv2

    interp = cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST
    return cv2.resize(rgb_map.astype(np.float32), (width, height), interpolation=interp)


@torch.no_grad()
def feature_maps(
    encoder: ImageEncoder, images: Sequence[np.ndarray], batch_size: int = 16
) -> torch.Tensor:
    """uint8 RGB images (H, W, 3) -> backbone feature maps (B, C, h, w) of ``encoder``."""
    encoder.eval()
    device = next(encoder.parameters()).device
    out = []
    for s in range(0, len(images), batch_size):
        batch = to_batch(images[s : s + batch_size], encoder.img_size).to(device)
        out.append(encoder.feature_map(batch).float().cpu())
    return torch.cat(out)


def pca_maps(
    encoder: ImageEncoder,
    images: Sequence[np.ndarray],
    fit: str = "joint",
    quantile: float = 0.01,
    smooth: bool = False,
) -> list[np.ndarray]:
    """PCA colour maps of ``encoder`` for uint8 RGB images, each upsampled to its image size.

    Returns one float32 (H, W, 3) array in [0, 1] per image.
    """
    rgb = pca_rgb(feature_maps(encoder, images), fit=fit, quantile=quantile)
    return [
        upsample(m, im.shape[0], im.shape[1], smooth) for m, im in zip(rgb, images, strict=True)
    ]


def pca_figure(
    images: Sequence[str | Path],
    checkpoints: Sequence[str | Path | ImageEncoder],
    out: str | Path,
    labels: Sequence[str] | None = None,
    weathers: Sequence[str | None] = (None,),
    fit: str = "joint",
    quantile: float = 0.01,
    smooth: bool = False,
    cell_px: int = 200,
    dpi: int = 100,
    overwrite: bool = False,
) -> Path:
    """Figure 5: rows = image x weather condition; columns = the image, then one PCA map per
    checkpoint. Weather is applied to the images given (pass drone images).

    The PNG is ``(1 + len(checkpoints)) * cell_px`` wide and ``rows * cell_px + 30`` high.
    """
    target = check_out(out, overwrite)
    if target is None:
        return Path(out)
    if not images or not checkpoints:
        raise GeoLinkError("pca_figure needs at least one image and one checkpoint")
    labels = list(labels) if labels else [default_label(c, i) for i, c in enumerate(checkpoints)]
    if len(labels) != len(checkpoints):
        raise GeoLinkError(f"{len(labels)} labels for {len(checkpoints)} checkpoints")
    encoders = [load_encoder(c) for c in checkpoints]  # fail on a bad checkpoint before work
    rows = [(Path(p), w) for p in images for w in weathers]
    pictures = [load_rgb(p, w) for p, w in rows]
    columns = [
        pca_maps(enc, pictures, fit=fit, quantile=quantile, smooth=smooth) for enc in encoders
    ]
    header = 30
    fig = new_figure((1 + len(checkpoints)) * cell_px / dpi, (len(rows) * cell_px + header) / dpi)
    grid = fig.add_gridspec(
        len(rows), 1 + len(checkpoints), left=0, right=1, bottom=0,
        top=1 - header / (len(rows) * cell_px + header), wspace=0.04, hspace=0.04,
    )  # fmt: skip
    for r, ((path, weather), picture) in enumerate(zip(rows, pictures, strict=True)):
        cells = [picture] + [col[r] for col in columns]
        for c, (cell, title) in enumerate(zip(cells, ["image", *labels], strict=True)):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(cell, interpolation="nearest")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(title, fontsize=9, pad=3)
        name = path.name + (f" | {weather}" if weather else "")
        fig.axes[-len(cells)].text(
            0.02, 0.98, name, transform=fig.axes[-len(cells)].transAxes, fontsize=7,
            va="top", ha="left", color="white", bbox=dict(facecolor="black", alpha=0.6, pad=1.5),
        )  # fmt: skip
    return save_figure(fig, target, dpi=dpi)
