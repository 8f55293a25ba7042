"""Deployment: everything ``geolink index / locate / serve / export`` run on.

A FAISS index of geo-referenced satellite tiles (:mod:`.store`, :mod:`.tiles`, :mod:`.geo`), the
2D encoders on PyTorch or onnxruntime (:mod:`.encoders`) with the ONNX contract they share
(:mod:`.contract`), the :class:`Localizer` (encoder + index + metadata), the ONNX export
(:mod:`.export`, needs torch; not imported here) and the HTTP service (:mod:`.serve`).

Nothing in this package imports the point branch, losses, reconstruction or training, and the
ONNX path does not import torch at all.
"""

from geolink.deploy.geo import exif_gps, haversine_m, read_coords_csv
from geolink.deploy.localizer import Localizer, LocateResult, Match
from geolink.deploy.store import INDEX_TYPES, TileIndex
from geolink.deploy.tiles import Tile, tiles_from_folder, tiles_from_geotiff

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
