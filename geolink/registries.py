"""Every pluggable part of GeoLink, by name: one registry kind (:class:`Registry`), one place.

Entries are lazy (``"module:attr"``), so this module imports nothing heavy: the config checks
(:mod:`geolink.utils.ranges`), the CLI's ``choices`` and error messages read the names from here
without importing torch, FAISS or pycolmap, and choosing a name imports only its code. Add a part
by writing it and adding one line here.
"""

from __future__ import annotations

from geolink.utils.registry import Registry

# dataset readers: build_dataset(name, root, **options)
DATASETS = Registry(
    "dataset",
    lazy={
        "university1652": "geolink.data.university1652:University1652",
        "sues200": "geolink.data.sues200:SUES200",
        "denseuav": "geolink.data.denseuav:DenseUAV",
        "folder": "geolink.data.folder:FolderDataset",
        "synthetic": "geolink.data.synthetic_dataset:SyntheticDataset",
    },
)

# offline 3D: build_backend(name, conf)
RECON_BACKENDS = Registry(
    "reconstruction backend",
    lazy={
        "colmap": "geolink.recon.colmap:ColmapBackend",
        "vggt": "geolink.recon.vggt:VGGTBackend",
        "depth": "geolink.recon.depth:DepthFusionBackend",
    },
)

# FAISS index types of the tile index: factory(dim, n_hint, **params)
INDEX_TYPES = Registry(
    "index type",
    lazy={
        "flat": "geolink.deploy.store:flat_index",
        "ivf": "geolink.deploy.store:ivf_index",
        "hnsw": "geolink.deploy.store:hnsw_index",
    },
)

# the 3D branch (model.point.encoder / model.point.head): factory(point_cfg[, in_dim, dim])
POINT_ENCODERS = Registry("point encoder", lazy={"point_nn": "geolink.models.geolink:point_nn"})
POINT_HEADS = Registry(
    "point head",
    lazy={"mme": "geolink.models.geolink:mme_head", "linear": "geolink.models.geolink:linear_head"},
)

__all__ = ["DATASETS", "INDEX_TYPES", "POINT_ENCODERS", "POINT_HEADS", "RECON_BACKENDS"]
