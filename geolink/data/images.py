"""Image reading with errors that name the file."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from geolink.errors import DataError

log = logging.getLogger(__name__)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 RGB, shape (H, W, 3).

    Grey and RGBA files are converted to 3 channels; 16-bit files are scaled to 8 bit.
    Raises :class:`DataError` naming the file if it is missing, empty or cannot be decoded.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e.strerror or e}") from None
    if data.size == 0:
        raise DataError(f"cannot decode image {path}: the file is empty")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        img = _decode_with_pil(path)
    if img is None:
        raise DataError(
            f"cannot decode image {path}: not a readable image file (corrupt or truncated?)"
        )
    return to_rgb8(img, path)


def _decode_with_pil(path: Path) -> np.ndarray | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))[..., ::-1].copy()  # BGR like cv2
    except Exception:
        return None


def to_rgb8(img: np.ndarray, what: str | Path) -> np.ndarray:
    """cv2-decoded array (grey / BGR / BGRA, 8 or 16 bit) -> uint8 RGB (H, W, 3)."""
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise DataError(f"image {what} has shape {img.shape}; expected H x W x 3 (or grey/RGBA)")
    code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(img, code)


def check_image(path: Path, mode: str = "header") -> str | None:
    """Return an error message if ``path`` is not a readable image, else None.

    ``mode="header"`` only opens the file with PIL (fast: catches empty, truncated-header and
    non-image files); ``mode="decode"`` decodes all pixels.
    """
    if mode == "decode":
        try:
            load_image(path)
        except DataError as e:
            return str(e)
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # PIL raises many types for bad files
        return f"cannot decode image {path}: not a readable image file ({type(e).__name__})"
    return None


def check_images(
    paths: Sequence[Path], mode: str = "header", skip_corrupt: bool = False
) -> list[tuple[Path, str]]:
    """Check every image; return ``[(path, error), ...]`` for the bad ones.

    Without ``skip_corrupt`` the first bad image raises :class:`DataError` naming it (and saying
    how to skip it).
    """
    if mode not in ("header", "decode"):
        raise DataError(f"unknown image check mode '{mode}'; expected header or decode")
    from tqdm.auto import tqdm

    bad: list[tuple[Path, str]] = []
    for p in tqdm(paths, desc=f"checking images ({mode})", unit="img", leave=False):
        err = check_image(Path(p), mode)
        if err is None:
            continue
        if not skip_corrupt:
            raise DataError(f"{err}\n(use --skip-corrupt to skip unreadable images and list them)")
        log.warning("skipping corrupt image: %s", err)
        bad.append((Path(p), err))
    return bad
