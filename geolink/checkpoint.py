"""Checkpoints: safetensors weights with the resolved config in the file's metadata.

A checkpoint written by ``save_model`` is self-describing: ``load_image_encoder`` rebuilds the 2D
encoder from it without the training code (only ``image_encoder.*`` tensors are read), so the
deployment path never imports the point branch, losses or trainer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from geolink.errors import GeoLinkError
from geolink.models.image_encoder import ImageEncoder, ImageEncoderConfig
from geolink.utils.io import atomic_path

FORMAT = "geolink-checkpoint-v1"
ENCODER_PREFIX = "image_encoder."


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_model(
    model: nn.Module, path: str | Path, config_yaml: str, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model.state_dict()`` (no ``module.`` prefixes) + config to ``path`` atomically."""
    state = {
        k.removeprefix("module."): v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    # safetensors refuses shared storage (e.g. a CLUB estimator shared by both views).
    seen: dict[int, str] = {}
    for k, v in list(state.items()):
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        if ptr in seen and ptr != -1:
            state[k] = v.clone()
        seen.setdefault(ptr, k)
    meta = {"format": FORMAT, "config": config_yaml, "extra": json.dumps(extra or {})}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return Path(path)


def read_extra(path: str | Path) -> dict[str, Any]:
    """The ``extra`` record saved with a checkpoint (epoch, step, metric, selection), read from
    its metadata without loading the tensors; ``{}`` when absent or unreadable."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        return json.loads(meta.get("extra", "{}"))
    except ValueError:
        return {}


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise GeoLinkError(f"checkpoint not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise GeoLinkError(f"{path} is not a readable safetensors checkpoint: {e}") from e
    if meta.get("format") != FORMAT:
        raise GeoLinkError(
            f"{path} is not a GeoLink checkpoint (metadata format={meta.get('format')!r}); "
            "backbone weights go in model.image.pretrained instead"
        )
    return tensors, meta


def _recorded_config(meta: dict[str, str]) -> dict[str, Any]:
    """The checkpoint's recorded config (YAML text) as a dict, parsed once."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = OmegaConf.to_container(OmegaConf.create(meta.get("config") or ""), resolve=True)
    except (OmegaConfBaseException, ValueError, TypeError) as e:
        raise GeoLinkError(f"checkpoint metadata holds no readable config ({e})") from None
    if not isinstance(cfg, dict):
        raise GeoLinkError("checkpoint metadata holds no readable config (not a mapping)")
    return cfg


def encoder_config_from_meta(meta: dict[str, str]) -> ImageEncoderConfig:
    """The image-encoder config recorded in a checkpoint: known keys, values in range."""
    return _encoder_config(_recorded_config(meta))


def _encoder_config(recorded: dict[str, Any]) -> ImageEncoderConfig:
    from geolink.utils.ranges import out_of_range

    model = recorded.get("model")
    image = model.get("image") if isinstance(model, dict) else None
    if image is None:
        raise GeoLinkError("checkpoint metadata holds no readable config (no model.image)")
    if not isinstance(image, dict):
        raise GeoLinkError("checkpoint config: model.image is not a mapping")
    defaults = asdict(ImageEncoderConfig())
    unknown = set(image) - set(defaults)
    if unknown:
        raise GeoLinkError(f"checkpoint config has unknown image-encoder keys: {sorted(unknown)}")
    bad = out_of_range({"image": image}, "model.")
    if bad:
        raise GeoLinkError("checkpoint config: " + "; ".join(bad))
    # Weights come from the checkpoint itself, never from the hub.
    image["pretrained"] = None
    return ImageEncoderConfig(**{**defaults, **image})


def load_image_encoder(path: str | Path, map_location: str = "cpu") -> tuple[ImageEncoder, dict]:
    """Rebuild the 2D encoder of a GeoLink checkpoint. Returns (encoder in eval mode, meta).

    ``meta`` holds ``config`` (YAML text), ``name`` (the config's run name), ``sha256`` of the
    file and ``extra``.
    """
    tensors, meta = read_checkpoint(path)
    recorded = _recorded_config(meta)
    cfg = _encoder_config(recorded)
    encoder = ImageEncoder(cfg)
    sd = {k[len(ENCODER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(ENCODER_PREFIX)}
    try:
        missing, unexpected = encoder.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shapes that do not fit the recorded config
        first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e))
        raise GeoLinkError(
            f"{path}: the weights do not match the checkpoint's own recorded config ({first})"
        ) from None
    if missing or unexpected:
        raise GeoLinkError(
            f"{path}: image encoder weights do not match its config "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    encoder.to(map_location).eval()
    info = {
        "config": meta["config"],
        "name": str(recorded.get("name") or ""),
        "sha256": file_sha256(path),
        "extra": json.loads(meta.get("extra", "{}")),
    }
    return encoder, info
