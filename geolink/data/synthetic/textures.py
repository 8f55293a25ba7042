"""Procedural material textures (numpy + OpenCV): a per-region atlas of facades, roofs, foliage.

The atlas is a stack of ``N_LAYERS`` square RGB layers (``ATLAS_SIZE`` px), each cut into a
``GRID x GRID`` grid of cells. A surface refers to a cell by ``(layer, cell)`` and tiles it with
``fract(uv)`` in the shader, so one cell is one repeat of the material (e.g. two window bays by two
floors). Textures carry structure at several scales (windows, tiles, gravel, leaves) so that
SIFT finds stable features across views, which COLMAP needs.
"""

from __future__ import annotations

import cv2
import numpy as np

from geolink.data.synthetic.styles import Color, RegionStyle

ATLAS_SIZE = 1024
GRID = 4
CELL = ATLAS_SIZE // GRID
N_LAYERS = 3
BAYS = 4  # a facade cell holds BAYS window bays x BAYS floors
PAD = 3 / ATLAS_SIZE  # inset of a cell's rectangle so mipmaps bleed less from neighbours

# (layer, first cell, number of cells) of each material family
FACADE = (0, 0, 16)
ROOF_FLAT = (1, 0, 6)
ROOF_TILES = (1, 6, 4)
SOLAR = (1, 10, 2)
METAL = (1, 12, 2)
PLAIN = (1, 14, 1)
GLASS = (1, 15, 1)
FOLIAGE = (2, 0, 4)
FAR_GROUND = (2, 4, 3)
PLAZA = (2, 7, 2)
POOL = (2, 9, 1)
BARK = (2, 10, 1)


def cell_rect(layer: int, cell: int) -> tuple[float, float, float, float, float]:
    """(x0, y0, w, h, layer) of an atlas cell in normalised texture coordinates."""
    cx, cy = cell % GRID, cell // GRID
    return (cx / GRID + PAD, cy / GRID + PAD, 1 / GRID - 2 * PAD, 1 / GRID - 2 * PAD, float(layer))


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """Smooth noise in [0, 1] of ``shape`` (H, W) with about ``cells`` features across."""
    h, w = shape
    gh, gw = (
        max(2, int(round(cells * h / max(h, w))) + 2),
        max(2, int(round(cells * w / max(h, w))) + 2),
    )
    grid = rng.random((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def fbm(
    rng: np.random.Generator, shape: tuple[int, int], cells: float, octaves: int = 4
) -> np.ndarray:
    """Fractal (multi-octave) value noise, normalised to [0, 1]. Shape (H, W) float32."""
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for i in range(octaves):
        out += amp * value_noise(rng, shape, cells * 2**i)
        total += amp
        amp *= 0.5
    out /= total
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def colorize(base: Color, shade: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 image: ``base`` colour scaled per pixel by ``shade`` (H, W)."""
    return np.asarray(base, np.float32)[None, None, :] * shade[..., None]


def _grain(rng: np.random.Generator, shape: tuple[int, int], amount: float) -> np.ndarray:
    return 1.0 + amount * (rng.random(shape, dtype=np.float32) - 0.5)


def facade(rng: np.random.Generator, wall: Color, window: Color, ratio: float) -> np.ndarray:
    """One facade repeat: ``BAYS`` bays x ``BAYS`` floors, (CELL, CELL, 3) float32, row 0 = top.

    Every window differs a little (tone, blinds, reflections) so that a facade is not a perfectly
    periodic pattern, which would make feature matching ambiguous.
    """
    n = CELL
    img = colorize(wall, (0.92 + 0.16 * fbm(rng, (n, n), 6)) * _grain(rng, (n, n), 0.12))
    bay = floor = n // BAYS
    glass_w = int(bay * np.clip(ratio + rng.uniform(-0.08, 0.08), 0.2, 0.9))
    glass_h = int(floor * np.clip(0.45 + ratio * 0.4 + rng.uniform(-0.05, 0.05), 0.35, 0.85))
    frame = np.asarray(wall, np.float32) * rng.uniform(1.05, 1.25)
    grad = np.linspace(1.3, 0.75, glass_h, dtype=np.float32)[:, None, None]
    for fy in range(BAYS):
        y0 = fy * floor
        img[y0 : y0 + max(2, n // 60)] *= 0.8  # floor slab band
        for bx in range(BAYS):
            x0 = bx * bay + (bay - glass_w) // 2
            wy0 = y0 + (floor - glass_h) // 2
            img[wy0 - 2 : wy0 + glass_h + 2, x0 - 2 : x0 + glass_w + 2] = frame
            g = np.asarray(window, np.float32) * rng.uniform(0.7, 1.5)
            pane = g[None, None, :] * grad * _grain(rng, (glass_h, glass_w), 0.1)[..., None]
            blind = int(rng.integers(0, glass_h // 2 + 1)) if rng.random() < 0.4 else 0
            pane[:blind] = np.asarray(wall, np.float32) * rng.uniform(0.75, 1.1)
            s = int(rng.integers(0, max(1, glass_w - 3)))
            pane[:, s : s + 2] *= 1.6  # reflection streak
            pane[:, glass_w // 2 - 1 : glass_w // 2 + 1] = frame * 0.9  # mullion
            img[wy0 : wy0 + glass_h, x0 : x0 + glass_w] = pane
            img[wy0 + glass_h + 2 : wy0 + glass_h + 4, x0 - 3 : x0 + glass_w + 3] = frame * 1.1
    return img


def roof_flat(rng: np.random.Generator, base: Color) -> np.ndarray:
    """Gravel / membrane flat roof: stains, seams and grain. (CELL, CELL, 3) float32."""
    n = CELL
    shade = (0.85 + 0.25 * fbm(rng, (n, n), 4)) * _grain(rng, (n, n), 0.25)
    img = colorize(base, shade)
    step = int(rng.integers(28, 64))
    img[::step] *= 0.82
    img[:, ::step] *= 0.88
    return img


def roof_tiles(rng: np.random.Generator, base: Color) -> np.ndarray:
    """Rows of staggered clay/concrete tiles; each tile has its own tone. Row 0 = ridge side."""
    n = CELL
    rows, cols = 12, 10
    tone = 0.8 + 0.35 * rng.random((rows, cols + 1), dtype=np.float32)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r = (yy / n * rows).astype(int)
    c = ((xx / n * cols) + 0.5 * (r % 2)).astype(int)
    shade = tone[r, c % (cols + 1)]
    shade *= 1.0 - 0.35 * ((yy / n * rows) % 1.0 > 0.82)  # shadow line under each row
    shade *= _grain(rng, (n, n), 0.15)
    return colorize(base, shade * (0.9 + 0.2 * fbm(rng, (n, n), 3)))


def solar(rng: np.random.Generator) -> np.ndarray:
    """Solar panel cells: dark blue with bright grid lines."""
    n = CELL
    img = colorize((38, 52, 92), 0.9 + 0.25 * fbm(rng, (n, n), 3))
    img[:: n // 6] = (190, 195, 205)
    img[:, :: n // 10] = (150, 160, 180)
    return img


def metal(rng: np.random.Generator) -> np.ndarray:
    """Ribbed sheet metal (rooftop units)."""
    n = CELL
    xx = np.arange(n, dtype=np.float32)
    ribs = 0.85 + 0.2 * (np.sin(xx / n * 2 * np.pi * 16) > 0.6)
    return colorize((185, 188, 190), ribs[None, :] * _grain(rng, (n, n), 0.1))


def foliage(rng: np.random.Generator) -> np.ndarray:
    """Leaf clumps, grey-scale around 255 (the tree tint gives the colour)."""
    n = CELL
    blobs = np.zeros((n, n), np.float32)
    for _ in range(260):
        x, y = rng.integers(0, n, 2)
        cv2.circle(
            blobs, (int(x), int(y)), int(rng.integers(4, 14)), float(rng.uniform(0.5, 1)), -1
        )
    blobs = cv2.GaussianBlur(blobs, (0, 0), 2.0)
    shade = 0.55 + 0.6 * blobs / max(blobs.max(), 1e-6)
    shade *= _grain(rng, (n, n), 0.35)
    return np.repeat(255 * shade[..., None], 3, axis=2)


def far_ground(rng: np.random.Generator, palette: tuple[Color, ...]) -> np.ndarray:
    """Distant land: a patchwork of fields/blocks seen from far away."""
    n = CELL
    img = np.zeros((n, n, 3), np.float32)
    k = 5
    for i in range(k):
        for j in range(k):
            col = palette[int(rng.integers(len(palette)))]
            img[i * n // k : (i + 1) * n // k, j * n // k : (j + 1) * n // k] = col
    img *= (0.8 + 0.35 * fbm(rng, (n, n), 8))[..., None]
    img[:: n // k] = (90, 90, 92)
    img[:, :: n // k] = (90, 90, 92)
    return img


def plaza(rng: np.random.Generator, base: Color) -> np.ndarray:
    """Paving slabs."""
    n = CELL
    tone = 0.88 + 0.2 * rng.random((16, 16), dtype=np.float32)
    shade = cv2.resize(tone, (n, n), interpolation=cv2.INTER_NEAREST) * _grain(rng, (n, n), 0.1)
    shade[:: n // 16] *= 0.8
    shade[:, :: n // 16] *= 0.8
    return colorize(base, shade)


def pool(rng: np.random.Generator) -> np.ndarray:
    n = CELL
    ripple = fbm(rng, (n, n), 10)
    return colorize((70, 170, 200), 0.85 + 0.3 * ripple)


def bark(rng: np.random.Generator) -> np.ndarray:
    n = CELL
    return colorize((90, 70, 50), 0.8 + 0.4 * fbm(rng, (n, n), 12))


def plain(rng: np.random.Generator) -> np.ndarray:
    n = CELL
    return np.full((n, n, 3), 235.0, np.float32) * _grain(rng, (n, n), 0.06)[..., None]


def build_atlas(style: RegionStyle, rng: np.random.Generator) -> np.ndarray:
    """All materials of a region. Returns (N_LAYERS, ATLAS_SIZE, ATLAS_SIZE, 3) uint8."""
    atlas = np.zeros((N_LAYERS, ATLAS_SIZE, ATLAS_SIZE, 3), np.float32)

    def put(family: tuple[int, int, int], i: int, img: np.ndarray) -> None:
        layer, first, _ = family
        c = first + i
        y, x = (c // GRID) * CELL, (c % GRID) * CELL
        atlas[layer, y : y + CELL, x : x + CELL] = img

    for i in range(FACADE[2]):
        wall = style.facade[i % len(style.facade)]
        # the facade is drawn top-down; texture row 0 is v = 0, the bottom of a wall
        put(FACADE, i, facade(rng, wall, style.window, style.window_ratio)[::-1])
    for i in range(ROOF_FLAT[2]):
        put(ROOF_FLAT, i, roof_flat(rng, style.roof_flat[i % len(style.roof_flat)]))
    for i in range(ROOF_TILES[2]):
        put(ROOF_TILES, i, roof_tiles(rng, style.roof_tiles[i % len(style.roof_tiles)]))
    for i in range(SOLAR[2]):
        put(SOLAR, i, solar(rng))
    for i in range(METAL[2]):
        put(METAL, i, metal(rng))
    put(PLAIN, 0, plain(rng))
    put(GLASS, 0, colorize(style.window, 0.9 + 0.3 * fbm(rng, (CELL, CELL), 4)))
    for i in range(FOLIAGE[2]):
        put(FOLIAGE, i, foliage(rng))
    for i in range(FAR_GROUND[2]):
        put(FAR_GROUND, i, far_ground(rng, style.far_ground))
    for i in range(PLAZA[2]):
        put(PLAZA, i, plaza(rng, style.plaza))
    put(POOL, 0, pool(rng))
    put(BARK, 0, bark(rng))
    return atlas.clip(0, 255).astype(np.uint8)
