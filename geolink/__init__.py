"""GeoLink: 3D-aware, generalizable cross-view (drone <-> satellite) geo-localization."""

__version__ = "0.1.0"
