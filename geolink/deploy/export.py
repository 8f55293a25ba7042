"""Export the 2D encoder of a GeoLink checkpoint to ONNX, with a parity check against PyTorch.

The ONNX file takes ``images`` (B, 3, S, S) float32, ImageNet-normalised, with a dynamic batch
axis, and returns ``embeddings`` (B, D), L2-normalised. Its metadata carries what the torch-free
localization path needs: input size, mean/std, output dim, backbone and the source checkpoint's
sha256 (so an index built from the checkpoint accepts the ONNX model and refuses others).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geolink.checkpoint import load_image_encoder
from geolink.deploy.contract import EncoderContract
from geolink.errors import DataError, GeoLinkError, MissingDependencyError
from geolink.utils.io import atomic_path

log = logging.getLogger(__name__)

FORMATS = ("onnx",)


def _onnx():
    try:
        import onnx
        import onnxruntime  # noqa: F401  (needed for the parity check)
    except ImportError:
        raise MissingDependencyError(
            "ONNX export needs onnx and onnxruntime: pip install onnx onnxruntime "
            "(or pip install 'geolink[deploy]')"
        ) from None
    return onnx


def _check_same_checkpoint(onnx, out: Path, checkpoint) -> None:
    """An existing export is kept only if it is this checkpoint's (else its parity check against
    another checkpoint would fail with a misleading message)."""
    from geolink.checkpoint import file_sha256

    try:
        proto = onnx.load(str(out), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError / InvalidProtobuf / OSError
        raise DataError(
            f"{out} exists but is not a readable ONNX file ({type(e).__name__}); use --overwrite"
        ) from None
    props = {p.key: p.value for p in proto.metadata_props}
    try:
        contract = EncoderContract.from_metadata(props, str(out))
    except DataError as e:
        raise DataError(f"{e}; {out} exists: use --overwrite to replace it") from None
    if contract.checkpoint_sha256 != file_sha256(checkpoint):
        raise DataError(
            f"{out} holds the export of another checkpoint ({contract.checkpoint}); use "
            "--overwrite to replace it or pick another --out"
        )


def export_onnx(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    opset: int = 18,
    dynamo: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the checkpoint's 2D encoder to ``out`` (one self-contained .onnx file, atomically).

    ``dynamo=False`` uses the TorchScript exporter (fast, single file); ``dynamo=True`` the
    torch.export-based one (needs onnxscript; weights are embedded, not external). An existing
    ``out`` is kept unless ``overwrite``.
    """
    onnx = _onnx()
    out = Path(out)
    if out.is_dir():
        raise DataError(f"{out} is a folder; --out takes the path of the .onnx file to write")
    if out.exists() and not overwrite:
        _check_same_checkpoint(onnx, out, checkpoint)
        log.info("%s exists; keeping it (use --overwrite to re-export)", out)
        return out
    model, meta = load_image_encoder(checkpoint)
    model.eval()
    size = model.img_size
    contract = EncoderContract(
        backbone=model.cfg.backbone,
        img_size=int(size),
        out_dim=int(model.out_dim),
        checkpoint_sha256=meta["sha256"],
        name=meta["name"],
        checkpoint=str(Path(checkpoint).resolve()),
        exporter="dynamo" if dynamo else "torchscript",
    )
    with atomic_path(out) as tmp:
        _export(model, contract, tmp, opset, dynamo, checkpoint)
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for k, v in contract.to_metadata().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    log.info("wrote %s (%.1f MB)", out, out.stat().st_size / 2**20)
    return out


def _export(
    model: Any, contract: EncoderContract, path: Path, opset: int, dynamo: bool, checkpoint: Any
) -> None:
    """torch.onnx.export of ``model`` to ``path`` with a dynamic batch axis."""
    x_name, y_name = contract.input_name, contract.output_name
    size = contract.img_size
    dummy = torch.randn(2, 3, size, size)
    kwargs: dict[str, Any] = {
        "input_names": [x_name],
        "output_names": [y_name],
        "opset_version": opset,
    }
    if dynamo:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
        kwargs["external_data"] = False
        kwargs["verbose"] = False
    else:
        kwargs["dynamic_axes"] = {x_name: {0: "batch"}, y_name: {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation / tracer chatter
        try:
            torch.onnx.export(model, (dummy,), str(path), dynamo=dynamo, **kwargs)
        except Exception as e:  # exporter failures come in many types
            raise GeoLinkError(
                f"ONNX export of {checkpoint} failed: {type(e).__name__}: {e}"
            ) from e


def parity_check(
    checkpoint: str | os.PathLike,
    onnx_path: str | os.PathLike,
    batch_sizes: tuple[int, ...] = (1, 3),
    seed: int = 0,
) -> dict[str, float]:
    """Run PyTorch and onnxruntime on the same random inputs; return the largest absolute
    difference, the smallest cosine similarity of the embeddings, the batch sizes tried and
    whether every output was finite (a non-finite output fails parity: max_abs_diff = inf)."""
    import onnxruntime as ort

    model, _ = load_image_encoder(checkpoint)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    max_abs, min_cos = 0.0, 1.0
    for b in batch_sizes:
        x = rng.standard_normal((b, 3, model.img_size, model.img_size)).astype(np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {name: x})[0]
        if not (np.isfinite(ref).all() and np.isfinite(got).all()):
            # max(0.0, nan) is 0.0: a NaN model would pass a plain max
            return {"max_abs_diff": float("inf"), "min_cosine": float("nan"),
                    "batch_sizes": list(batch_sizes), "finite": False}  # fmt: skip
        max_abs = max(max_abs, float(np.abs(ref - got).max()))
        cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
        min_cos = min(min_cos, float(cos.min()))
    return {
        "max_abs_diff": max_abs,
        "min_cosine": min_cos,
        "batch_sizes": list(batch_sizes),
        "finite": True,
    }
