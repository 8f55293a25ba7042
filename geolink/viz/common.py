"""Shared helpers of the figures: PNG writing, image loading, encoders and embeddings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from geolink.errors import GeoLinkError
from geolink.utils.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from geolink.models.image_encoder import ImageEncoder

log = logging.getLogger(__name__)


def new_figure(width_in: float, height_in: float) -> Figure:
    """A matplotlib figure on the Agg canvas (no pyplot global state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    log.info("wrote %s", path)
    return path


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 RGB image (H, W, 3) as PNG atomically; returns ``path``."""
    import cv2

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise GeoLinkError(f"could not encode PNG for {path}")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    log.info("wrote %s", path)
    return path


def check_out(path: str | Path, overwrite: bool) -> Path | None:
    """Return ``path`` if it must be (re)written, ``None`` if it exists and ``overwrite`` is off."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise GeoLinkError(f"figure output {path} must end in .png")
    if path.exists() and not overwrite:
        log.info("%s exists; skipping (overwrite=True to redo)", path)
        return None
    return path


def load_rgb(path: str | Path, weather: str | None = None) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3), optionally under a weather condition (drone only)."""
    from geolink.data.images import load_image

    image = load_image(path)
    if weather:
        from geolink.data.weather import apply_weather, weather_key

        image = apply_weather(image, weather, weather_key(path))
    return image


def to_batch(images: Sequence[np.ndarray], img_size: int) -> torch.Tensor:
    """uint8 RGB images (H, W, 3) -> ImageNet-normalised float tensor (B, 3, S, S)."""
    from geolink.data.transforms import eval_transforms

    tf = eval_transforms(img_size)
    return torch.stack([tf(image=im)["image"] for im in images])


def load_encoder(source: str | Path | ImageEncoder) -> ImageEncoder:
    """An encoder in eval mode from a checkpoint path (or the encoder itself)."""
    if isinstance(source, torch.nn.Module):
        return source.eval()
    from geolink.checkpoint import load_image_encoder

    encoder, _ = load_image_encoder(source)
    return encoder


def default_label(source: str | Path | ImageEncoder, index: int) -> str:
    """A panel title for a checkpoint: its run folder name (``run/checkpoints/best...``)."""
    if isinstance(source, torch.nn.Module):
        return f"model {index + 1}"
    p = Path(source)
    return p.parent.parent.name if p.parent.name == "checkpoints" else p.stem


def embed_paths(
    encoder: ImageEncoder,
    paths: Sequence[str | Path],
    batch_size: int = 32,
    weather: str | None = None,
) -> np.ndarray:
    """L2-normalised embeddings (N, D) float32 of image files, in order (the evaluator's
    :func:`geolink.evaluate.embed.embed_images`: batched, no_grad, AMP on GPU).

    ``weather`` is applied to every image given (pass drone images only).
    """
    from geolink.evaluate.embed import embed_images

    if not paths:
        return np.zeros((0, encoder.out_dim), dtype=np.float32)
    encoder.eval()
    emb = embed_images(encoder, paths, batch_size=batch_size, weather=weather, desc="embedding")
    if not np.isfinite(emb).all():
        raise GeoLinkError("the encoder produced non-finite embeddings (NaN/inf)")
    return np.asarray(emb, dtype=np.float32)
