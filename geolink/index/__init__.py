"""Localization beyond the paper: a FAISS index of geo-referenced satellite tiles, and a
:class:`Localizer` (2D encoder on PyTorch or onnxruntime + index + metadata) used by
``geolink index / locate / serve``.

Nothing in this package imports the point branch, losses, reconstruction or training, and the
ONNX path does not import torch at all.
"""

from geolink.index.geo import exif_gps, haversine_m, read_coords_csv
from geolink.index.localizer import Localizer, LocateResult, Match
from geolink.index.store import INDEX_TYPES, TileIndex
from geolink.index.tiles import Tile, tiles_from_folder, tiles_from_geotiff

__all__ = [
    "INDEX_TYPES",
    "LocateResult",
    "Localizer",
    "Match",
    "Tile",
    "TileIndex",
    "exif_gps",
    "haversine_m",
    "read_coords_csv",
    "tiles_from_folder",
    "tiles_from_geotiff",
]
