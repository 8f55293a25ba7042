"""``vggt`` backend (the paper's): VGGT depth + camera heads -> unprojected, confident points.

Needs a CUDA GPU, the separately installed ``vggt`` package (not on PyPI) and its weights::

    pip install git+https://github.com/facebookresearch/vggt
    # weights: hub id facebook/VGGT-1B (downloaded on first use), a local snapshot folder,
    # or a model.pt state dict (conf model=/path/to/model.pt)

The conversion from VGGT's outputs to a point cloud is done here in numpy (so it is testable
without the package): the pose encoding ``[t(3), quaternion xyzw(4), fov_h, fov_w]`` gives the
OpenCV camera-from-world extrinsics and pinhole intrinsics (fx = (W/2)/tan(fov_w/2), principal
point at the centre), depth is unprojected with them (VGGT's pixel convention: pixel (u, v) at
coordinates (u, v)), and pixels with ``depth_conf`` below the threshold are dropped.

Many frames are processed in chunks of ``max_frames`` that all start with frame 0, so every
chunk is expressed in frame 0's camera frame; each chunk's scale is aligned to the first chunk
through the median depth ratio of frame 0 (VGGT normalises scale per forward pass).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from geolink.errors import DataError, MissingDependencyError
from geolink.recon.base import ReconBackend, SceneFailed
from geolink.recon.depth import unproject_depth
from geolink.recon.pointcloud import PointCloud

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "the vggt backend needs the `vggt` package (not on PyPI) and a CUDA GPU: "
    "pip install git+https://github.com/facebookresearch/vggt ; weights: the hub id "
    "facebook/VGGT-1B (needs internet once; unset HF_HUB_OFFLINE) or a local path via "
    "--backend-opt model=/path/to/VGGT-1B"
)


# ------------------------------------------------------------------ pose encoding (numpy)
def quat_xyzw_to_rotmat(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions, scalar last -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    r = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1)  # fmt: skip
    return r.reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (4,) quaternion, scalar last, w >= 0."""
    R = np.asarray(R, np.float64)
    m = np.array([
        [R[0, 0] - R[1, 1] - R[2, 2], R[1, 0] + R[0, 1], R[2, 0] + R[0, 2], R[2, 1] - R[1, 2]],
        [R[1, 0] + R[0, 1], R[1, 1] - R[0, 0] - R[2, 2], R[2, 1] + R[1, 2], R[0, 2] - R[2, 0]],
        [R[2, 0] + R[0, 2], R[2, 1] + R[1, 2], R[2, 2] - R[0, 0] - R[1, 1], R[1, 0] - R[0, 1]],
        [R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1], R[0, 0] + R[1, 1] + R[2, 2]],
    ]) / 3.0  # fmt: skip
    vals, vecs = np.linalg.eigh(m)  # Bar-Itzhack: the quaternion is the top eigenvector
    q = vecs[:, np.argmax(vals)]
    return q if q[3] >= 0 else -q


def pose_encoding_to_extri_intri(
    pose_enc: np.ndarray, image_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """VGGT ``absT_quaR_FoV`` pose encoding -> OpenCV extrinsics and intrinsics.

    Args:
        pose_enc: (S, 9) ``[t(3), quat xyzw(4), fov_h, fov_w]`` (radians).
        image_hw: (H, W) of the images the network saw.
    Returns:
        (extrinsics (S, 3, 4) camera-from-world [R|t], intrinsics (S, 3, 3)).
    """
    pose_enc = np.asarray(pose_enc, np.float64).reshape(-1, 9)
    h, w = image_hw
    extr = np.concatenate([quat_xyzw_to_rotmat(pose_enc[:, 3:7]), pose_enc[:, :3, None]], -1)
    intr = np.zeros((len(pose_enc), 3, 3))
    intr[:, 0, 0] = (w / 2) / np.tan(pose_enc[:, 8] / 2)
    intr[:, 1, 1] = (h / 2) / np.tan(pose_enc[:, 7] / 2)
    intr[:, 0, 2], intr[:, 1, 2], intr[:, 2, 2] = w / 2, h / 2, 1.0
    return extr, intr


def extri_intri_to_pose_encoding(
    extr: np.ndarray, intr: np.ndarray, image_hw: tuple[int, int]
) -> np.ndarray:
    """Inverse of :func:`pose_encoding_to_extri_intri`: (S, 3, 4), (S, 3, 3) -> (S, 9)."""
    h, w = image_hw
    out = np.zeros((len(extr), 9))
    for i, (e, k) in enumerate(zip(extr, intr, strict=True)):
        out[i, :3] = e[:3, 3]
        out[i, 3:7] = rotmat_to_quat_xyzw(e[:3, :3])
        out[i, 7] = 2 * np.arctan((h / 2) / k[1, 1])
        out[i, 8] = 2 * np.arctan((w / 2) / k[0, 0])
    return out


def vggt_outputs_to_cloud(
    depth: np.ndarray,
    depth_conf: np.ndarray,
    pose_enc: np.ndarray,
    images: np.ndarray | None = None,
    conf_threshold: float = 5.0,
    conf_percentile: float = 0.0,
    stride: int = 1,
    pixel_center: float = 0.0,
) -> PointCloud:
    """Turn VGGT predictions for S frames into one world-frame point cloud.

    Args:
        depth: (S, H, W) or (S, H, W, 1) depth along the camera z axis.
        depth_conf: (S, H, W) confidence (VGGT: >= 1, larger is better).
        pose_enc: (S, 9) pose encoding (see :func:`pose_encoding_to_extri_intri`).
        images: optional (S, 3, H, W) images in [0, 1] for colours.
        conf_threshold: keep pixels with confidence >= this value (VGGT's demo uses 5.0).
        conf_percentile: if > 0, also drop the lowest ``conf_percentile`` % of pixels.
        stride: pixel subsampling.
        pixel_center: pixel centre offset (VGGT unprojects pixel (u, v) at (u, v): 0.0).
    Returns:
        PointCloud with xyz (M, 3) in the frame of the extrinsics (VGGT: frame 0's camera),
        rgb if ``images`` is given, and conf (M,).
    """
    depth = np.asarray(depth, np.float32)
    if depth.ndim == 4:
        depth = depth[..., 0]
    conf = np.asarray(depth_conf, np.float32)
    if depth.ndim != 3 or conf.shape != depth.shape or len(pose_enc) != len(depth):
        raise ValueError(
            f"expected depth (S,H,W[,1]), depth_conf (S,H,W), pose_enc (S,9); got "
            f"{depth.shape}, {conf.shape}, {np.shape(pose_enc)}"
        )
    s, h, w = depth.shape
    extr, intr = pose_encoding_to_extri_intri(pose_enc, (h, w))
    thr = conf_threshold
    if conf_percentile > 0:
        thr = max(thr, float(np.percentile(conf, conf_percentile)))
    xyz, rgb, cf = [], [], []
    for i in range(s):
        d = np.where(conf[i] >= thr, depth[i], 0.0)
        T = np.eye(4)  # world_from_camera = inverse of [R|t]
        T[:3, :3] = extr[i, :, :3].T
        T[:3, 3] = -extr[i, :, :3].T @ extr[i, :, 3]
        pts, pix = unproject_depth(d, intr[i], T, stride, pixel_center)
        xyz.append(pts)
        cf.append(conf[i][pix[:, 0], pix[:, 1]])
        if images is not None:
            img = np.asarray(images[i])
            rgb.append((img[:, pix[:, 0], pix[:, 1]].T * 255).round().clip(0, 255))
    return PointCloud(
        np.concatenate(xyz), np.concatenate(rgb) if images is not None else None,
        np.concatenate(cf), info={"images_used": s},
    )  # fmt: skip


def align_chunk_scale(
    ref_depth: np.ndarray, depth: np.ndarray, ref_conf: np.ndarray, conf: np.ndarray, thr: float
) -> float:
    """Scale s with ``ref_depth ~ s * depth`` for frame 0 seen in two chunks (median ratio).

    Args: (H, W) depths and confidences of the same frame from the reference and another chunk.
    """
    ok = (ref_conf >= thr) & (conf >= thr) & (depth > 0) & (ref_depth > 0)
    if ok.sum() < 16:
        ok = (depth > 0) & (ref_depth > 0)
    if not ok.any():
        return 1.0
    return float(np.median(ref_depth[ok] / depth[ok]))


def merge_chunks(chunks: list[dict[str, np.ndarray]], conf_threshold: float) -> dict[str, Any]:
    """Merge per-chunk predictions (each starting with frame 0) into one set of S frames.

    Each chunk dict holds ``depth`` (s, H, W), ``depth_conf`` (s, H, W), ``pose_enc`` (s, 9)
    and optionally ``images`` (s, 3, H, W). Chunks after the first are rescaled to the first
    (depth and translation) and lose their copy of frame 0.
    """
    ref = chunks[0]
    out = {k: [v] for k, v in ref.items()}
    for ch in chunks[1:]:
        s = align_chunk_scale(ref["depth"][0], ch["depth"][0], ref["depth_conf"][0],
                              ch["depth_conf"][0], conf_threshold)  # fmt: skip
        pose = np.array(ch["pose_enc"], np.float64, copy=True)
        pose[:, :3] *= s
        scaled = {**ch, "depth": ch["depth"] * s, "pose_enc": pose}
        for k in out:
            out[k].append(scaled[k][1:])
    return {k: np.concatenate(v) for k, v in out.items()}


# ------------------------------------------------------------------ the backend
def _import_vggt() -> Any:
    try:
        from vggt.models.vggt import VGGT
        from vggt.utils.load_fn import load_and_preprocess_images
    except ImportError:
        raise MissingDependencyError(INSTALL_HINT) from None
    return VGGT, load_and_preprocess_images


class VGGTBackend(ReconBackend):
    """Feed-forward VGGT reconstruction (GPU)."""

    name = "vggt"
    parallel_safe = False  # one 1B-parameter model per GPU process
    default_conf: dict[str, Any] = {
        "model": "facebook/VGGT-1B",  # hub id, local snapshot folder, or a .pt state dict
        "device": "cuda",
        "dtype": "auto",  # auto (bf16 on compute capability >= 8, else fp16) | bf16 | fp16 | fp32
        "preprocess_mode": "crop",  # load_and_preprocess_images mode: crop | pad
        "max_frames": 64,  # frames per forward pass; more are chunked around frame 0
        "conf_threshold": 5.0,
        "conf_percentile": 0.0,
        "stride": 1,
        "min_frames": 2,
    }

    def __init__(self, conf: dict[str, Any] | None = None):
        super().__init__(conf)
        self._model = None

    def check(self) -> None:
        """Fail early (before any scene) when the package or the GPU is missing."""
        _import_vggt()
        import torch

        if self.conf["device"].startswith("cuda") and not torch.cuda.is_available():
            raise MissingDependencyError(
                "the vggt backend needs a CUDA GPU (device=cuda); none is visible. "
                "Use --backend colmap on CPU machines."
            )

    def _load_model(self) -> Any:
        if self._model is not None:
            return self._model
        import torch

        VGGT, _ = _import_vggt()
        src = str(self.conf["model"])
        try:
            if src.endswith((".pt", ".pth")):
                if not Path(src).is_file():
                    raise DataError(f"{src}: VGGT checkpoint not found")
                model = VGGT()
                model.load_state_dict(torch.load(src, map_location="cpu", weights_only=True))
            else:
                model = VGGT.from_pretrained(src)
        except (OSError, ValueError) as e:
            raise MissingDependencyError(f"cannot load VGGT weights '{src}' ({e}). "
                                         + INSTALL_HINT) from None  # fmt: skip
        self._model = model.eval().to(self.conf["device"])
        return self._model

    def _dtype(self) -> Any:
        import torch

        name = self.conf["dtype"]
        if name == "auto":
            if not torch.cuda.is_available():
                return torch.float32
            major = torch.cuda.get_device_capability()[0]
            return torch.bfloat16 if major >= 8 else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]

    def _predict(self, images: Any) -> dict[str, np.ndarray]:
        import torch

        model, dtype = self._load_model(), self._dtype()
        dev = self.conf["device"]
        with torch.no_grad(), torch.autocast(device_type=dev.split(":")[0], dtype=dtype,
                                             enabled=dtype != torch.float32):  # fmt: skip
            pred = model(images.to(dev)[None])
        return {
            "depth": pred["depth"][0, ..., 0].float().cpu().numpy(),
            "depth_conf": pred["depth_conf"][0].float().cpu().numpy(),
            "pose_enc": pred["pose_enc"][0].float().cpu().numpy(),
            "images": images.float().cpu().numpy(),
        }

    def reconstruct(self, images: list[Path], work_dir: Path) -> PointCloud:
        if len(images) < self.conf["min_frames"]:
            raise SceneFailed(
                f"{len(images)} images; vggt needs at least {self.conf['min_frames']}"
            )
        _, load_images = _import_vggt()
        paths = [str(p) for p in images]
        step = max(int(self.conf["max_frames"]) - 1, 1)
        chunks = []
        for start in range(1, max(len(paths), 2), step):
            idx = [0, *range(start, min(start + step, len(paths)))]
            batch = load_images([paths[i] for i in idx], mode=self.conf["preprocess_mode"])
            if isinstance(batch, tuple):  # newer versions also return masks
                batch = batch[0]
            chunks.append(self._predict(batch))
        pred = merge_chunks(chunks, self.conf["conf_threshold"]) if len(chunks) > 1 else chunks[0]
        cloud = vggt_outputs_to_cloud(
            pred["depth"], pred["depth_conf"], pred["pose_enc"], pred["images"],
            self.conf["conf_threshold"], self.conf["conf_percentile"], self.conf["stride"],
        )  # fmt: skip
        extr, _ = pose_encoding_to_extri_intri(pred["pose_enc"], pred["depth"].shape[1:3])
        centres = -np.einsum("sji,sj->si", extr[:, :, :3], extr[:, :, 3])  # -R^T t
        cloud.info.update(
            images_registered=len(paths),
            chunks=len(chunks),
            camera_centers={p: c.tolist() for p, c in zip(paths, centres, strict=True)},
        )
        return cloud
