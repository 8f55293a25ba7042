"""Image -> embedding for localization: the 2D encoder run by PyTorch or by onnxruntime.

Both take uint8 RGB images (H, W, 3) and return float32 (B, D) L2-normalised embeddings, with
the same preprocessing as evaluation (``geolink.data.transforms.eval_transforms``: linear-exact
resize to S x S, ImageNet normalisation), written in numpy so the ONNX path never imports torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from geolink.deploy.contract import ONNX_FORMAT, EncoderContract  # noqa: F401 - re-exported
from geolink.errors import DataError, GeoLinkError, MissingDependencyError
from geolink.utils.normalization import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)


def preprocess(
    images: Sequence[np.ndarray],
    img_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """uint8 RGB images (H, W, 3) -> float32 batch (B, 3, S, S), normalised."""
    mean_a = np.asarray(mean, dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(std, dtype=np.float32) * 255.0)
    out = np.empty((len(images), 3, img_size, img_size), dtype=np.float32)
    for i, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise DataError(f"expected uint8 RGB (H, W, 3) images, got {img.dtype} {img.shape}")
        x = cv2.resize(img, (img_size, img_size), interpolation=cv2.INTER_LINEAR_EXACT)
        out[i] = ((x.astype(np.float32) - mean_a) * inv_std).transpose(2, 0, 1)
    return out


def _l2n(x: np.ndarray) -> np.ndarray:
    # A NaN/Inf model must not rank, index or serve: refuse its output.
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise DataError(
            f"encoder output: non-finite values (NaN/Inf) in {int(bad.sum())} of {len(x)} "
            "embedding(s); the model's weights or the input images are broken"
        )
    # The encoder already normalises; renormalising guards against fp drift (ONNX, fp16).
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class TorchEncoder:
    """A GeoLink checkpoint's 2D encoder on PyTorch."""

    backend = "torch"

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        device: str = "cpu",
        batch_size: int = 16,
        threads: int = 0,
    ):
        import torch

        if threads > 0:
            torch.set_num_threads(int(threads))

        from geolink.checkpoint import load_image_encoder

        self._torch = torch
        self.device = device
        self.batch_size = batch_size
        self.model, meta = load_image_encoder(checkpoint, map_location=device)
        cfg = self.model.cfg
        self.img_size = int(cfg.img_size)
        self.info: dict[str, Any] = {
            "name": meta["name"],
            "backbone": cfg.backbone,
            "img_size": self.img_size,
            "out_dim": int(self.model.out_dim),
            "checkpoint": str(Path(checkpoint).resolve()),
            "checkpoint_sha256": meta["sha256"],
        }

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB images -> (B, D) float32 L2-normalised embeddings."""
        torch = self._torch
        outs = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                x = torch.from_numpy(preprocess(images[s : s + self.batch_size], self.img_size))
                outs.append(self.model(x.to(self.device)).float().cpu().numpy())
        return (
            _l2n(np.concatenate(outs)) if outs else np.zeros((0, self.info["out_dim"]), np.float32)
        )


class OnnxEncoder:
    """An ONNX file written by ``geolink export`` on onnxruntime (no torch import)."""

    backend = "onnx"

    def __init__(
        self,
        path: str | os.PathLike,
        providers: Sequence[str] | None = None,
        batch_size: int = 16,
        threads: int = 0,
    ):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError(
                "--onnx needs onnxruntime: pip install onnxruntime (or 'geolink[deploy]')"
            ) from None
        path = Path(path)
        if not path.is_file():
            raise DataError(f"ONNX file not found: {path}")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = int(threads)  # 0 = onnxruntime's default (all cores)
        try:
            self.session = ort.InferenceSession(
                str(path), opts, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as e:  # onnxruntime raises its own exception types
            raise DataError(f"cannot load ONNX model {path}: {e}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.contract = c = EncoderContract.from_metadata(dict(props), str(path))
        self.batch_size = batch_size
        self.img_size, self.mean, self.std = c.img_size, list(c.mean), list(c.std)
        self.input_name = c.input_name
        self.info = {
            "name": c.name,
            "backbone": c.backbone,
            "img_size": c.img_size,
            "out_dim": c.out_dim,
            "checkpoint": c.checkpoint,
            "checkpoint_sha256": c.checkpoint_sha256,
            "onnx": str(path.resolve()),
        }

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB images -> (B, D) float32 L2-normalised embeddings."""
        outs = []
        for s in range(0, len(images), self.batch_size):
            x = preprocess(images[s : s + self.batch_size], self.img_size, self.mean, self.std)
            outs.append(self.session.run(None, {self.input_name: x})[0])
        return (
            _l2n(np.concatenate(outs)) if outs else np.zeros((0, self.info["out_dim"]), np.float32)
        )


def load_encoder(
    checkpoint: str | os.PathLike | None = None,
    onnx: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    threads: int = 0,
) -> TorchEncoder | OnnxEncoder:
    """The ONNX encoder if ``onnx`` is given, else the PyTorch one from ``checkpoint``.

    ``threads`` > 0 sets the CPU threads of the backend (0 = its default, all cores).
    """
    if onnx is not None:
        return OnnxEncoder(onnx, batch_size=batch_size, threads=threads)
    if checkpoint is None:
        raise GeoLinkError("give a --checkpoint (.safetensors) or an --onnx model")
    return TorchEncoder(checkpoint, device=device, batch_size=batch_size, threads=threads)
