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


MAX_PIXELS_ENV = "GEOLINK_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000  # 10000 x 10000: above any drone photo or satellite tile
MIN_SIDE = 2  # a 1-pixel-wide image has no structure to match


def max_image_pixels() -> int:
    """The pixel cap for one decoded image: ``$GEOLINK_MAX_IMAGE_PIXELS`` or 100 M."""
    raw = os.environ.get(MAX_PIXELS_ENV, "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"{MAX_PIXELS_ENV}={raw!r}: expected a positive number of pixels")
    return value


def check_declared_size(source, what: str | Path) -> None:
    """Refuse an image whose header declares more than :func:`max_image_pixels` pixels (a
    decompression bomb: a few KB that decode to GBs) or a side under 2 pixels, before any pixel
    is decoded. ``source``: a path or the encoded bytes. Formats PIL cannot parse pass (the
    decoder's own limits then apply)."""
    import io
    import warnings

    from PIL import Image

    cap = max_image_pixels()
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                width, height = im.size
    except Image.DecompressionBombError as e:  # over PIL's own limit (2 x 89 M pixels)
        import re

        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,}" if found else "more than 178,956,970"
        raise _too_many(what, size, cap) from None
    except Exception:  # not a format PIL knows, or a broken header: the decoder decides
        return
    if width * height > cap:
        raise _too_many(what, f"{width}x{height} = {width * height:,}", cap)
    check_side(width, height, what)


def _too_many(what, size: str, cap: int) -> DataError:
    return DataError(
        f"image {what} declares {size} pixels, over the limit of {cap:,} "
        f"(set {MAX_PIXELS_ENV} to raise it)"
    )


def check_side(width: int, height: int, what) -> None:
    """Refuse an image narrower than :data:`MIN_SIDE` pixels."""
    if min(width, height) < MIN_SIDE:
        raise DataError(f"image {what} is degenerate: {width}x{height} pixels")


def _imdecode(data, what: str | Path) -> np.ndarray | None:
    try:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:  # e.g. over OpenCV's own pixel limit
        raise DataError(f"cannot decode image {what}: {str(e).strip().splitlines()[-1]}") from None


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 RGB, shape (H, W, 3).

    Grey and RGBA files are converted to 3 channels; 16-bit files are scaled to 8 bit.
    Raises :class:`DataError` naming the file if it is missing, empty, cannot be decoded,
    declares more pixels than :func:`max_image_pixels` or is narrower than 2 pixels.
    """
    path = Path(path)
    return decode_image(read_image_bytes(path), path)


def read_image_bytes(path: str | os.PathLike) -> bytes:
    """The encoded bytes of an image file; :class:`DataError` naming the file if unreadable."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e.strerror or e}") from None


def decode_image(data: bytes, what: str | Path = "image") -> np.ndarray:
    """Encoded bytes (JPEG/PNG/TIFF/BMP/WebP, anything OpenCV or else PIL reads) -> uint8 RGB
    (H, W, 3), with the checks of :func:`load_image` (which reads a file and calls this; the
    service decodes uploads with it). ``what`` names the source in errors."""
    if len(data) == 0:
        raise DataError(f"cannot decode image {what}: it is empty")
    check_declared_size(data, what)  # reads the header only
    _check_complete(np.frombuffer(data, dtype=np.uint8), what)
    img = _imdecode(data, what)
    if img is None:
        img = _decode_with_pil(data)
    if img is None:
        raise DataError(f"cannot decode image {what}: not a readable image (corrupt or truncated?)")
    check_side(img.shape[1], img.shape[0], what)
    return to_rgb8(img, what)


def _decode_with_pil(data: bytes) -> np.ndarray | None:
    import io

    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
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
        check_declared_size(path, path)
    except DataError as e:
        return str(e)
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # PIL raises many types for bad files
        return f"cannot decode image {path}: not a readable image file ({type(e).__name__})"
    return _truncated(path)


# magic bytes at the start, the marker every complete file ends with, how far from the end it
# may sit (JPEG: EOI, maybe followed by padding; PNG: the IEND chunk)
_FORMATS = {"JPEG": (b"\xff\xd8", b"\xff\xd9", 4096), "PNG": (b"\x89PNG", b"IEND", 64)}
_TAIL = max(window for _, _, window in _FORMATS.values())


def _truncation(head: bytes, tail: bytes, what) -> str | None:
    """Why a JPEG/PNG is cut off (its end marker is missing), or None. A truncated file passes
    PIL's header check, and OpenCV decodes it with grey rows."""
    for kind, (magic, marker, window) in _FORMATS.items():
        if head.startswith(magic) and marker not in tail[-window:]:
            return f"cannot decode image {what}: truncated {kind} file (no end marker)"
    return None


def _truncated(path: Path) -> str | None:
    """:func:`_truncation` of a file, reading only its first and last bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(max(0, path.stat().st_size - _TAIL))
        return _truncation(head, f.read(), path)


def _check_complete(data: np.ndarray, what) -> None:
    err = _truncation(data[:8].tobytes(), data[-_TAIL:].tobytes(), what)
    if err:
        raise DataError(err)


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
