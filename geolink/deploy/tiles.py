"""Geo-referenced satellite tiles: a folder of images + ``name,lat,lon`` CSV, or a GeoTIFF cut
into square tiles through its geotransform; plus image decoding shared by locate and serve.

Nothing here imports torch (the ONNX localization path stays torch-free).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geolink.data.images import load_image, to_rgb8
from geolink.deploy.geo import metres_per_degree, read_coords_csv
from geolink.errors import DataError, MissingDependencyError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


@dataclass
class Tile:
    """One gallery tile: id, centre position, ground footprint, and how to read its pixels."""

    id: str
    lat: float | None
    lon: float | None
    footprint_m: float | None
    source: dict[str, Any]  # {"kind": "file", "path"} | {"kind": "geotiff", "path", "window"}
    _loader: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def load(self) -> np.ndarray:
        """Pixels as uint8 RGB (H, W, 3)."""
        if self._loader is not None:
            return self._loader()
        return read_tile_source(self.source)

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lat": self.lat,
            "lon": self.lon,
            "footprint_m": self.footprint_m,
            "source": self.source,
        }


# ----------------------------------------------------------------------------- image decoding
def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); errors name the file (the project's one
    reader, :func:`geolink.data.images.load_image`)."""
    return load_image(path)


def read_tile_source(source: dict[str, Any]) -> np.ndarray:
    if source.get("kind") == "geotiff":
        return _read_geotiff_window(Path(source["path"]), source["window"])
    return read_image(source["path"])


# ----------------------------------------------------------------------------- folder + CSV
def find_images(root: str | os.PathLike, what: str = "tile folder") -> list[Path]:
    """Image files below ``root`` (recursive, sorted; hidden files and folders, such as the
    temporary files of an interrupted atomic write, are skipped); ``what`` names the folder in
    errors."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what} not found: {root}")
    paths = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not paths:
        raise DataError(f"no images ({', '.join(IMAGE_EXTS)}) under {what} {root}")
    return paths


def tiles_from_folder(
    root: str | os.PathLike,
    coords_csv: str | os.PathLike | None = None,
    footprint_m: float | None = None,
) -> list[Tile]:
    """Every image under ``root`` is a tile; its id is the file stem (University-1652 galleries:
    ``<loc>/<loc>.jpg``). ``coords_csv`` (``name,lat,lon[,footprint_m]``, ``name`` = id or file
    name) gives the centres; tiles missing from it are an error (say which)."""
    paths = find_images(root)
    coords = read_coords_csv(coords_csv) if coords_csv is not None else None
    tiles, seen, missing = [], {}, []
    for p in paths:
        tid = p.stem
        if tid in seen:
            raise DataError(
                f"two tiles share the id '{tid}': {seen[tid]} and {p}; ids are file stems"
            )
        seen[tid] = p
        rec: dict[str, float] = {}
        if coords is not None:
            rec = coords.get(tid) or coords.get(p.name) or coords.get(p.parent.name) or {}
            if not rec:
                missing.append(tid)
        tiles.append(
            Tile(
                id=tid,
                lat=rec.get("lat"),
                lon=rec.get("lon"),
                footprint_m=rec.get("footprint_m", footprint_m),
                source={"kind": "file", "path": str(p.resolve())},
            )
        )
    if missing:
        raise DataError(
            f"{coords_csv}: no coordinates for {len(missing)} tile(s), e.g. {', '.join(missing[:5])}; "
            "every tile needs a row name,lat,lon (name = file stem)"
        )
    if coords is None:
        log.warning("no --coords given: tiles have no lat/lon, localization returns tile ids only")
    return tiles


# ----------------------------------------------------------------------------- GeoTIFF
def _rasterio():
    try:
        import rasterio
    except ImportError:
        raise MissingDependencyError(
            "GeoTIFF tiling needs rasterio: pip install rasterio (or pip install 'geolink[deploy]')"
        ) from None
    return rasterio


def _read_geotiff_window(path: Path, window: list[int]) -> np.ndarray:
    rasterio = _rasterio()
    from rasterio.windows import Window

    col, row, w, h = window
    with rasterio.open(path) as ds:
        bands = [1, 2, 3] if ds.count >= 3 else [1]
        arr = ds.read(bands, window=Window(col, row, w, h), boundless=True, fill_value=0)
    img = np.moveaxis(arr, 0, -1)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.dtype != np.uint8:
        img = to_rgb8(img[..., ::-1].copy(), str(path))  # to_rgb8 expects BGR order
    return np.ascontiguousarray(img)


def geotiff_pixel_size_m(ds: Any) -> tuple[float, float]:
    """Ground size of one pixel (x, y) in metres, for projected (metre) or geographic CRSs."""
    a, e = abs(ds.transform.a), abs(ds.transform.e)
    if ds.transform.b or ds.transform.d:
        raise DataError(
            f"{ds.name}: rotated geotransforms are not supported; warp it north-up first"
        )
    crs = ds.crs
    if crs is None:
        raise DataError(f"{ds.name} has no CRS; expected a geo-referenced GeoTIFF")
    if crs.is_geographic:
        cy = ds.bounds.bottom + (ds.bounds.top - ds.bounds.bottom) / 2
        m_lat, m_lon = metres_per_degree(cy)
        return a * m_lon, e * m_lat
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return a * factor, e * factor


def tiles_from_geotiff(
    path: str | os.PathLike,
    tile_size_m: float,
    stride_m: float | None = None,
    min_valid: float = 0.5,
) -> list[Tile]:
    """Cut a north-up GeoTIFF into square tiles of ``tile_size_m`` metres every ``stride_m``.

    Tile centres are converted to WGS84 lat/lon through the raster's geotransform and CRS. Tiles
    whose valid (non-nodata) fraction is below ``min_valid`` are dropped. Ids are
    ``<stem>_r<row>_c<col>`` with the pixel offsets of the tile's top-left corner.
    """
    rasterio = _rasterio()

    path = Path(path)
    if not path.is_file():
        raise DataError(f"GeoTIFF not found: {path}")
    if tile_size_m <= 0 or (stride_m is not None and stride_m <= 0):
        raise DataError(
            f"--tile-size and --stride must be positive metres, got {tile_size_m}, {stride_m}"
        )
    stride_m = stride_m or tile_size_m
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise DataError(f"cannot open GeoTIFF {path}: {e}") from None
    with ds:
        tiles, (px, tw, th, sx, sy) = _cut_tiles(ds, path, tile_size_m, stride_m, min_valid)
    if not tiles:
        raise DataError(f"{path}: no tile with at least {min_valid:.0%} valid pixels")
    log.info(
        "%s: %d tiles of %dx%d px (%.3g m/px), stride %dx%d px",
        path.name,
        len(tiles),
        tw,
        th,
        px,
        sx,
        sy,
    )
    return tiles


def _cut_tiles(ds: Any, path: Path, tile_size_m: float, stride_m: float, min_valid: float):
    """The tiles of an open north-up raster and the grid in pixels (m/px, tile w/h, stride x/y)."""
    from rasterio.warp import transform as warp_transform
    from rasterio.windows import Window

    px, py = geotiff_pixel_size_m(ds)
    tw, th = max(1, round(tile_size_m / px)), max(1, round(tile_size_m / py))
    sx, sy = max(1, round(stride_m / px)), max(1, round(stride_m / py))
    if tw > ds.width or th > ds.height:
        raise DataError(
            f"{path}: tile size {tile_size_m} m = {tw}x{th} px is larger than the raster "
            f"({ds.width}x{ds.height} px at {px:.3g} x {py:.3g} m/px)"
        )
    offsets = [
        (r, c) for r in range(0, ds.height - th + 1, sy) for c in range(0, ds.width - tw + 1, sx)
    ]
    tf = ds.transform  # north-up: x = c + a * col, y = f + e * row
    xs = [tf.c + tf.a * (c + tw / 2) for _, c in offsets]
    ys = [tf.f + tf.e * (r + th / 2) for r, _ in offsets]
    lons, lats = warp_transform(ds.crs, "EPSG:4326", list(xs), list(ys))
    tiles = []
    for (r, c), lat, lon in zip(offsets, lats, lons, strict=True):
        if min_valid > 0 and _valid_fraction(ds, Window(c, r, tw, th)) < min_valid:
            continue
        source = {"kind": "geotiff", "path": str(path.resolve()), "window": [c, r, tw, th]}
        tiles.append(
            Tile(f"{path.stem}_r{r}_c{c}", float(lat), float(lon), float(tile_size_m), source)
        )
    return tiles, (px, tw, th, sx, sy)


def _valid_fraction(ds: Any, window: Any) -> float:
    mask = ds.dataset_mask(window=window)
    return float(np.count_nonzero(mask)) / max(1, mask.size)
