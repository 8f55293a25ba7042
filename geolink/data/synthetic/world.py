"""Procedural worlds: a region is a style plus a map of locations; a location is a 3D scene.

Random streams are derived from ``(seed, region index, location index, purpose)`` so every
location is generated independently of the others and of the worker that renders it: the same
seed gives pixel-identical output whatever the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geolink.data.synthetic.ground import paint_ground
from geolink.data.synthetic.layout import Layout, generate_layout, height_at
from geolink.data.synthetic.mesh import build_mesh
from geolink.data.synthetic.presets import SynthParams
from geolink.data.synthetic.styles import RegionStyle
from geolink.data.synthetic.textures import build_atlas

# purposes of the random streams
_LAYOUT, _GROUND, _MESH, _CAMERA, _ATLAS, _MAP = range(6)


def stream(seed: int, region: int, location: int, purpose: int) -> np.random.Generator:
    """An independent random generator for one purpose of one location (or region: location -1)."""
    return np.random.default_rng([seed, region, location + 1, purpose])


@dataclass
class Scene:
    """One location: its layout, merged mesh (M, VERTEX_FLOATS), ground texture (n, n, 4)."""

    layout: Layout
    vertices: np.ndarray
    ground: np.ndarray

    @property
    def half(self) -> float:
        return self.layout.half

    def target_height(self) -> float:
        return max(b.height + b.ridge for b in self.layout.buildings if b.target)

    def height_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Top-surface height (metres) at local (x, y); see :func:`layout.height_at`."""
        return height_at(self.layout, x, y)


def build_scene(
    style: RegionStyle, params: SynthParams, seed: int, region: int, location: int
) -> Scene:
    """Generate location ``location`` of region ``region`` in its local frame (target at 0, 0)."""
    lay = generate_layout(style, stream(seed, region, location, _LAYOUT), params.scene_half_m)
    ground = paint_ground(style, lay, stream(seed, region, location, _GROUND), params.ground_px)
    verts = build_mesh(lay, style.floor_m, stream(seed, region, location, _MESH))
    return Scene(lay, verts, ground)


def region_atlas(style: RegionStyle, seed: int, region: int) -> np.ndarray:
    """The material atlas shared by all locations of a region, (L, S, S, 3) uint8."""
    return build_atlas(style, stream(seed, region, -1, _ATLAS))


def camera_rng(seed: int, region: int, location: int) -> np.random.Generator:
    return stream(seed, region, location, _CAMERA)


def location_centers(params: SynthParams, seed: int, region: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the locations of a region are on its map, and which are train.

    Returns ``centers`` (N, 2) east/north metres from the region origin and ``is_train`` (N,)
    bool. Locations lie on a jittered square grid spaced ``location_spacing_m`` apart so their
    scenes never overlap; train and test locations are interleaved at random.
    """
    rng = stream(seed, region, -1, _MAP)
    n_train = params.region_train_locations(region)
    n = n_train + params.test_locations
    side = int(np.ceil(np.sqrt(n)))
    ij = np.stack(np.unravel_index(rng.permutation(side * side)[:n], (side, side)), -1)
    spacing = params.location_spacing_m
    centers = (ij - (side - 1) / 2) * spacing + rng.uniform(-0.1, 0.1, (n, 2)) * spacing
    is_train = np.zeros(n, bool)
    is_train[rng.permutation(n)[:n_train]] = True
    return centers, is_train
