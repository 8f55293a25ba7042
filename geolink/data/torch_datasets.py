"""torch ``Dataset`` wrappers: training pairs and evaluation image lists.

Randomness is keyed, not global: the flip and the albumentations draws of item ``i`` in epoch
``e`` depend only on ``(seed, e, i)``, so results do not depend on the number of DataLoader
workers and a resumed run sees the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from geolink.data.base import Pair
from geolink.data.images import load_image
from geolink.data.transforms import eval_transforms, train_transforms
from geolink.errors import DataError

log = logging.getLogger(__name__)


AUGMENTS = ("full", "geometric")


def _item_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def geometric_draw(seed: int, epoch: int, index: int, flip_p: float) -> tuple[bool, int]:
    """The (joint flip, satellite quarter turns) of training item ``index`` in ``epoch``
    under ``augment='geometric'`` (also what the frozen-trunk cache looks up)."""
    rng = np.random.default_rng(_item_seed(seed, epoch, index))
    flip = bool(rng.random() < flip_p)
    return flip, int(rng.integers(4))


def geometric_view(image: np.ndarray, flip: bool, quarter_turns: int, size: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> flipped, rotated, resized, ImageNet-normalised (3, S, S) tensor."""
    if flip:
        image = image[:, ::-1]
    if quarter_turns:
        image = np.rot90(image, quarter_turns)
    return eval_transforms(size)(image=np.ascontiguousarray(image))["image"]


class EpochPairs(Dataset):
    """Training pairs whose augmentation draws depend on (seed, epoch, index)."""

    pairs: list[Pair]
    epoch: int = 0

    @property
    def labels(self) -> list[int]:
        return [p.label for p in self.pairs]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)


class PairDataset(EpochPairs):
    """Training pairs -> ``{"drone": (3, S, S), "satellite": (3, S, S), "label", "index", "scene"}``.

    Both images are flipped horizontally together with probability ``flip_p``; the satellite
    transform rotates by a multiple of 90 degrees (see :func:`train_transforms`).
    ``augment='geometric'`` keeps only the flip and the rotation (no photometric or dropout
    augmentation): what a frozen-trunk cache can reproduce exactly.
    ``skip_corrupt``: an unreadable image is logged, recorded in ``self.corrupt`` (per process)
    and replaced by the next pair; otherwise it raises :class:`DataError` naming the file.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        img_size: int = 224,
        drone_transform: Callable | None = None,
        satellite_transform: Callable | None = None,
        flip_p: float = 0.5,
        seed: int = 0,
        skip_corrupt: bool = False,
        satellite_size: int | None = None,
        augment: str = "full",
        sepia_solarize: bool = False,
    ):
        if augment not in AUGMENTS:
            raise DataError(f"unknown augment '{augment}'; expected one of {', '.join(AUGMENTS)}")
        if not pairs:
            raise DataError("no training pairs: the dataset's training split is empty")
        self.pairs = list(pairs)
        extra = {"sepia_solarize": sepia_solarize}
        self.drone_transform = drone_transform or train_transforms(img_size, "drone", **extra)
        self.satellite_transform = satellite_transform or train_transforms(
            satellite_size or img_size, "satellite", **extra
        )
        self.flip_p = flip_p
        self.augment = augment
        self.img_size = img_size
        self.satellite_size = satellite_size or img_size
        self.seed = seed
        self.epoch = 0
        self.skip_corrupt = skip_corrupt
        self.corrupt: list[str] = []

    def __getitem__(self, index: int) -> dict[str, Any]:
        for attempt in range(len(self.pairs)):
            i = (index + attempt) % len(self.pairs)
            pair = self.pairs[i]
            try:
                drone, satellite = load_image(pair.drone), load_image(pair.satellite)
            except DataError as e:
                if not self.skip_corrupt:
                    raise
                log.warning("skipping pair %d: %s", i, e)
                self.corrupt.append(str(e))
                continue
            return self._make(index, pair, drone, satellite)
        raise DataError("every training image failed to load")

    def _make(self, index: int, pair: Pair, drone: np.ndarray, satellite: np.ndarray) -> dict:
        if self.augment == "geometric":
            flip, turns = geometric_draw(self.seed, self.epoch, index, self.flip_p)
            return {
                "drone": geometric_view(drone, flip, 0, self.img_size),
                "satellite": geometric_view(satellite, flip, turns, self.satellite_size),
                "label": pair.label,
                "index": index,
                "scene": pair.scene,
            }
        seed = _item_seed(self.seed, self.epoch, index)
        rng = np.random.default_rng(seed)
        if rng.random() < self.flip_p:
            drone, satellite = drone[:, ::-1], satellite[:, ::-1]
        for t, s in ((self.drone_transform, seed), (self.satellite_transform, seed + 1)):
            if hasattr(t, "set_random_seed"):
                t.set_random_seed(s)
        return {
            "drone": self.drone_transform(image=np.ascontiguousarray(drone))["image"],
            "satellite": self.satellite_transform(image=np.ascontiguousarray(satellite))["image"],
            "label": pair.label,
            "index": index,
            "scene": pair.scene,
        }


class ImageListDataset(Dataset):
    """Evaluation images -> ``{"image": (3, S, S), "index": int}``.

    ``weather`` (a condition of :mod:`geolink.data.weather`) is applied to the loaded image
    before ``transform``, keyed by :func:`geolink.data.weather.weather_key` of the path, so it
    is identical on every run and matches images written by ``write_weather``.
    ``skip_corrupt``: an unreadable image yields a zero image and ``"valid": False``.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        transform: Callable | None = None,
        weather: str | None = None,
        skip_corrupt: bool = False,
        img_size: int = 224,
    ):
        self.paths = [Path(p) for p in paths]
        self.transform = transform or eval_transforms(img_size)
        if weather is not None:
            from geolink.data.weather import check_condition

            check_condition(weather)
        self.weather = weather
        self.skip_corrupt = skip_corrupt
        self.img_size = img_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        try:
            image = load_image(path)
        except DataError as e:
            if not self.skip_corrupt:
                raise
            log.warning("corrupt image replaced by zeros: %s", e)
            out = self.transform(image=np.zeros((self.img_size, self.img_size, 3), np.uint8))
            return {"image": out["image"], "index": index, "valid": False}
        if self.weather is not None:
            from geolink.data.weather import apply_weather, weather_key

            image = apply_weather(image, self.weather, weather_key(path))
        image = self.transform(image=image)["image"]
        if not isinstance(image, torch.Tensor):
            image = torch.as_tensor(image)
        return {"image": image, "index": index, "valid": True}
