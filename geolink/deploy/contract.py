"""The ONNX contract, in one typed place: what an exported 2D encoder expects and returns.

``geolink export`` writes it into the ONNX file's metadata (one JSON value, numbers as numbers);
the torch-free :class:`~geolink.deploy.encoders.OnnxEncoder` reads it back and preprocesses with
it. Files from before the JSON contract (``geolink-onnx-v1``: every field a string, mean/std
comma-joined) are still read. No torch here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from geolink.errors import DataError
from geolink.utils.normalization import IMAGENET_MEAN, IMAGENET_STD
from geolink.utils.ranges import RULES

ONNX_FORMAT = "geolink-onnx-v2"
LEGACY_FORMATS = ("geolink-onnx-v1",)
CONTRACT_KEY = "geolink_contract"


@dataclass(frozen=True)
class EncoderContract:
    """Input: ``input_name``, float32 (B, 3, img_size, img_size), RGB scaled to [0, 1] then
    ``(x - mean) / std``, resized with bilinear interpolation. Output: ``output_name``, (B,
    out_dim) L2-normalised float32 embeddings. Plus where the weights came from."""

    backbone: str
    img_size: int
    out_dim: int
    checkpoint_sha256: str
    name: str = ""
    checkpoint: str = ""
    exporter: str = ""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_name: str = "images"
    output_name: str = "embeddings"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        bad = []
        ok, expected = RULES["model.image.img_size"]  # the same range a checkpoint is held to
        if not ok(self.img_size):
            bad.append(f"img_size={self.img_size!r} (expected {expected})")
        if not (isinstance(self.out_dim, int) and self.out_dim >= 1):
            bad.append(f"out_dim={self.out_dim!r} (expected an integer >= 1)")
        for key, lo in (("mean", -math.inf), ("std", 0.0)):
            v = getattr(self, key)
            if not (
                len(v) == 3
                and all(isinstance(x, (int, float)) and math.isfinite(x) and x > lo for x in v)
            ):
                what = "3 finite numbers" + (" > 0" if key == "std" else "")
                bad.append(f"{key}={list(v)!r} (expected {what})")
        if not self.checkpoint_sha256:
            bad.append("checkpoint_sha256 is empty")
        return bad

    def to_metadata(self) -> dict[str, str]:
        """ONNX metadata_props: the format and the contract as one JSON value."""
        return {"format": ONNX_FORMAT, CONTRACT_KEY: json.dumps(asdict(self), sort_keys=True)}

    @classmethod
    def from_metadata(cls, props: dict[str, str], where: str) -> EncoderContract:
        """Read the contract from ONNX metadata; :class:`DataError` naming ``where`` and what is
        wrong (not a GeoLink export, a missing key, a bad value)."""
        fmt = props.get("format")
        if fmt == ONNX_FORMAT:
            try:
                raw: dict[str, Any] = json.loads(props[CONTRACT_KEY])
            except (KeyError, ValueError):
                raise DataError(
                    f"{where}: metadata '{CONTRACT_KEY}' is missing or not JSON"
                ) from None
            if not isinstance(raw, dict):
                raise DataError(f"{where}: metadata '{CONTRACT_KEY}' is not a JSON object")
        elif fmt in LEGACY_FORMATS:
            raw = _legacy(props, where)
        else:
            raise DataError(
                f"{where} was not written by `geolink export` (no GeoLink metadata); re-export it"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise DataError(f"{where}: unknown contract keys {unknown} (a newer GeoLink?)")
        for key in ("mean", "std"):
            if key in raw and isinstance(raw[key], list):
                raw[key] = tuple(raw[key])
        try:
            return cls(**raw)
        except TypeError as e:  # a required key is missing
            raise DataError(f"{where}: incomplete encoder contract ({e})") from None
        except ValueError as e:
            raise DataError(f"{where}: bad encoder contract: {e}") from None


def _legacy(props: dict[str, str], where: str) -> dict[str, Any]:
    """The v1 layout: every field a string, mean/std comma-joined."""
    raw: dict[str, Any] = {}
    try:
        for key in ("backbone", "checkpoint_sha256", "name", "checkpoint", "exporter"):
            if key in props:
                raw[key] = props[key]
        for key in ("img_size", "out_dim"):
            raw[key] = int(props[key])
        for key in ("mean", "std"):
            if key in props:
                raw[key] = tuple(float(v) for v in props[key].split(","))
    except KeyError as e:
        raise DataError(f"{where}: metadata {e} is missing") from None
    except ValueError as e:
        raise DataError(f"{where}: unreadable metadata value ({e})") from None
    return raw
