"""Sample4Geo-style training transforms and deterministic evaluation transforms.

Both return an albumentations ``Compose`` that maps ``image=uint8 (H, W, 3) RGB`` to a float
tensor (3, S, S) normalised with ImageNet mean/std. The joint horizontal flip of the drone and
satellite image of a pair is done by :class:`geolink.data.torch_datasets.PairDataset`, because
it must be the same decision for both views.
"""

from __future__ import annotations

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from geolink.errors import ConfigError
from geolink.utils.normalization import IMAGENET_MEAN, IMAGENET_STD

VIEWS = ("drone", "satellite")


def train_transforms(
    img_size: int,
    view: str,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    sepia_solarize: bool = False,
) -> A.Compose:
    """Sample4Geo University-1652 training augmentation for one view.

    ImageCompression(q 90-100, p .5) -> Resize(S, S, linear exact) -> ColorJitter(.15 x 4, p .5)
    -> OneOf[AdvancedBlur, Sharpen] p .3 -> OneOf[GridDropout(.4), CoarseDropout(10-25 holes of
    0.1S-0.2S)] p .3 -> (satellite only) RandomRotate90 p 1 -> Normalize -> CHW tensor.
    ``sepia_solarize``: OneOf[ToSepia, Solarize] p .1 after the dropout group, both views — what
    the GeoLink authors' SUES-200 and DenseUAV scripts add (the datasets' ``sepia_solarize``).
    """
    if view not in VIEWS:
        raise ConfigError(f"unknown view '{view}'; expected one of {', '.join(VIEWS)}")
    size = _check_size(img_size)
    ops: list = [
        A.ImageCompression(quality_range=(90, 100), p=0.5),
        A.Resize(size, size, interpolation=cv2.INTER_LINEAR_EXACT, p=1.0),
        A.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.15, hue=0.15, p=0.5),
        A.OneOf([A.AdvancedBlur(p=1.0), A.Sharpen(p=1.0)], p=0.3),
        A.OneOf(
            [
                A.GridDropout(ratio=0.4, p=1.0),
                A.CoarseDropout(
                    num_holes_range=(10, 25),
                    hole_height_range=(int(0.1 * size), int(0.2 * size)),
                    hole_width_range=(int(0.1 * size), int(0.2 * size)),
                    p=1.0,
                ),
            ],
            p=0.3,
        ),
    ]
    if sepia_solarize:
        ops.append(A.OneOf([A.ToSepia(p=1.0), A.Solarize(p=1.0)], p=0.1))
    if view == "satellite":
        ops.append(A.RandomRotate90(p=1.0))
    ops += [A.Normalize(mean=mean, std=std), ToTensorV2()]
    return A.Compose(ops)


def eval_transforms(
    img_size: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> A.Compose:
    """Deterministic: Resize(S, S, linear exact) -> Normalize -> CHW float tensor."""
    size = _check_size(img_size)
    return A.Compose(
        [
            A.Resize(size, size, interpolation=cv2.INTER_LINEAR_EXACT, p=1.0),
            A.Normalize(mean=mean, std=std),
            ToTensorV2(),
        ]
    )


def _check_size(img_size: int) -> int:
    if not isinstance(img_size, int) or isinstance(img_size, bool) or img_size < 8:
        raise ConfigError(f"img_size must be an integer >= 8, got {img_size!r}")
    return img_size
