"""Paint a location's ground texture: grass and soil, water, plazas, parking, roads, markings.

The texture covers the square [-half, half]^2 of the layout, north up (row 0 is y = +half).
Its alpha channel is the vegetation fraction, which the shader uses for the "season" tint that
makes satellite tiles look as if taken at another time of year.
"""

from __future__ import annotations

import cv2
import numpy as np

from geolink.data.synthetic.layout import Layout, rect_corners
from geolink.data.synthetic.styles import RegionStyle
from geolink.data.synthetic.textures import fbm

SHIFT = 4  # cv2 sub-pixel bits
INV255 = np.float32(1 / 255)


class Painter:
    """Converts world coordinates (metres) to texture pixels and draws anti-aliased masks."""

    def __init__(self, half: float, n: int):
        self.half, self.n, self.res = half, n, 2 * half / n

    def px(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, np.float64)
        p = np.stack([(xy[..., 0] + self.half) / self.res, (self.half - xy[..., 1]) / self.res], -1)
        return np.round((p - 0.5) * (1 << SHIFT)).astype(np.int32)

    def mask(self) -> np.ndarray:
        return np.zeros((self.n, self.n), np.uint8)

    def polys(self, polys: list[np.ndarray], m: np.ndarray | None = None) -> np.ndarray:
        m = self.mask() if m is None else m
        if polys:
            cv2.fillPoly(m, [self.px(p) for p in polys], 255, cv2.LINE_AA, SHIFT)
        return m

    def lines(self, lines: list[np.ndarray], width_m: float, m=None, closed=False) -> np.ndarray:
        m = self.mask() if m is None else m
        if not lines:
            return m
        t = max(1, int(round(width_m / self.res)))
        flat = self.px(np.concatenate(lines))
        splits = np.cumsum([len(p) for p in lines])[:-1]
        cv2.polylines(m, np.split(flat, splits), closed, 255, t, cv2.LINE_AA, SHIFT)
        return m


def _blend(img: np.ndarray, mask: np.ndarray, layer: np.ndarray | tuple) -> None:
    """img = img * (1 - mask) + layer * mask, in place, only inside the mask's bounding box."""
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return
    box = (slice(y, y + h), slice(x, x + w))
    a = (mask[box].astype(np.float32) * INV255)[..., None]
    layer = np.asarray(layer, np.float32)
    if layer.ndim == 3:
        layer = layer[box]
    sub = img[box]
    sub += a * (layer - sub)


def _offset(pts: np.ndarray, d: float) -> np.ndarray:
    """Polyline shifted sideways by ``d`` metres (left of the direction of travel)."""
    t = np.gradient(pts, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True) + 1e-9
    return pts + d * np.stack([-t[:, 1], t[:, 0]], -1)


def _resample(pts: np.ndarray, step: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    q = np.arange(0, s[-1], step)
    return np.stack([np.interp(q, s, pts[:, 0]), np.interp(q, s, pts[:, 1])], -1)


def _dashes(pts: np.ndarray, on: float, period: float) -> list[np.ndarray]:
    p = _resample(pts, 0.5)
    k_on, k_per = int(on / 0.5), int(period / 0.5)
    return [p[i : i + k_on + 1] for i in range(0, len(p) - k_on, k_per)]


def _crosswalks(pts: np.ndarray, w: float) -> list[np.ndarray]:
    """Zebra stripes across both ends of a straight road segment."""
    a, b = pts[0], pts[-1]
    length = np.linalg.norm(b - a)
    if length < 4 * w:
        return []
    u = (b - a) / length
    n = np.array([-u[1], u[0]])
    out = []
    for end, sgn in ((a, 1), (b, -1)):
        s0 = end + sgn * u * (w * 0.5 + 2.5)
        for o in np.arange(-w / 2 + 0.6, w / 2 - 0.4, 1.0):
            out.append(np.array([s0 + n * o, s0 + n * o + sgn * u * 3.0]))
    return out


def paint_ground(style: RegionStyle, lay: Layout, rng: np.random.Generator, n: int) -> np.ndarray:
    """The ground texture of ``lay`` at ``n`` x ``n`` px. Returns (n, n, 4) uint8 (RGB + veg).

    The layers are painted in a fixed order, each drawing from ``rng`` in turn, so a seed gives
    the same texture."""
    P = Painter(lay.half, n)
    cells = 2 * lay.half / 12  # features of about 12 m, octaves down to ~1.5 m
    img, veg, g = _terrain(style, lay, P, rng, cells)
    _plazas_and_water(img, veg, style, lay, P, rng, g, cells)
    asphalt = (
        np.asarray(style.asphalt, np.float32) * (0.85 + 0.3 * fbm(rng, (n, n), cells, 3))[..., None]
    )
    _roads(img, veg, style, lay, P, asphalt, g)
    _footprints_and_occlusion(img, style, lay, P)
    img *= (1 + 0.22 * (rng.random((n, n), dtype=np.float32) - 0.5))[..., None]
    out = np.empty((n, n, 4), np.uint8)
    out[..., :3] = img.clip(0, 255)
    out[..., 3] = (veg.clip(0, 1) * 255).astype(np.uint8)
    return out


def _terrain(
    style: RegionStyle, lay: Layout, P: Painter, rng: np.random.Generator, cells: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grass of the style's tones, soil patches and (paved styles) concrete with slabs.
    Returns the image, the vegetation weight and the large-scale brightness noise ``g``."""
    shape = (P.n, P.n)
    g = fbm(rng, shape, cells, 4)
    pick = fbm(rng, shape, cells / 4, 2)
    grass = np.asarray(style.grass, np.float32)
    idx = np.minimum((pick * len(grass)).astype(int), len(grass) - 1)
    img = grass[idx] * (0.75 + 0.45 * g)[..., None]
    soil = fbm(rng, shape, cells / 2, 3)
    soil_a = np.clip((soil - 0.7) * 5, 0, 1)[..., None]
    img = (
        img * (1 - soil_a)
        + soil_a * np.asarray(style.soil, np.float32) * (0.85 + 0.3 * g)[..., None]
    )
    veg = 1 - soil_a[..., 0] * 0.7
    if style.paved > 0:
        paved = np.clip((style.paved - fbm(rng, shape, cells / 3, 2)) * 6, 0, 1)
        tone = np.ones(shape, np.float32)
        for _ in range(int(6 * (2 * lay.half / 10) ** 2 / 100)):  # slabs, patches, stains
            c = rng.uniform(-lay.half, lay.half, 2)
            poly = P.px(rect_corners(*c, *rng.uniform(0.5, 6.0, 2), rng.uniform(0, np.pi)))
            cv2.fillPoly(tone, [poly], float(rng.uniform(0.7, 1.2)), cv2.LINE_AA, SHIFT)
        concrete = np.asarray(style.plaza, np.float32) * (tone * (0.8 + 0.25 * g))[..., None]
        img += paved[..., None] * (concrete - img)
        veg *= 1 - paved
    return img, veg, g


def _plazas_and_water(
    img: np.ndarray, veg: np.ndarray, style: RegionStyle, lay: Layout, P: Painter, rng: np.random.Generator,
    g: np.ndarray, cells: float,
) -> None:  # fmt: skip
    """Paint plazas (slabs ~1.6 m) and water (a sandy shore, darker depths) into ``img`` and
    remove them from the vegetation weight ``veg``."""
    n = P.n
    m = P.polys(lay.plazas)
    if lay.plazas:
        k = max(3, int(round(1.6 / P.res)))
        line = np.arange(n) % k == 0
        slab = np.where(line[:, None] | line[None, :], 0.8, 1.0).astype(np.float32)
        _blend(img, m, np.asarray(style.plaza, np.float32) * (slab * (0.92 + 0.12 * g))[..., None])
        veg *= 1 - m * INV255
    m = P.polys(lay.water)
    if lay.water:
        shore = cv2.dilate(m, np.ones((7, 7), np.uint8))
        _blend(img, shore, np.asarray(style.soil, np.float32) * 1.15)
        depth = cv2.distanceTransform((m > 127).astype(np.uint8), cv2.DIST_L2, 5) * P.res
        deep = np.clip(depth / 10, 0, 1)[..., None]
        col = (1 - deep) * np.array([78, 104, 92], np.float32) + deep * np.array(
            [30, 52, 62], np.float32
        )
        col = col * (0.9 + 0.2 * fbm(rng, (n, n), cells * 2, 2))[..., None]
        _blend(img, m, col)
        veg *= 1 - shore * INV255


def _roads(
    img: np.ndarray, veg: np.ndarray, style: RegionStyle, lay: Layout, P: Painter, asphalt: np.ndarray,
    g: np.ndarray,
) -> None:  # fmt: skip
    """Parking lots with stall lines, then roads (sidewalk, asphalt, markings, crosswalks,
    drawn in batches of equal width); both taken out of the vegetation weight ``veg``."""
    m = P.polys(lay.parking)
    _blend(img, m, asphalt * 1.12)
    veg *= 1 - m * INV255
    _blend(img, P.lines([np.array(s) for s in lay.stalls], 0.15), style.marking)
    side, road, marks, zebra = P.mask(), P.mask(), P.mask(), P.mask()
    for w in sorted({w for _, w in lay.roads}):
        same = [pts for pts, w2 in lay.roads if w2 == w]
        P.lines(same, w + 2 * style.sidewalk_m, side)
        P.lines(same, w, road)
        if w >= 9:
            P.lines([_offset(q, d) for q in same for d in (w / 2 - 0.5, 0.5 - w / 2)], 0.15, marks)
        P.lines([z for q in same if len(q) == 2 for z in _crosswalks(q, w)], 0.5, zebra)
    P.lines([d for q, _ in lay.roads for d in _dashes(q, 3.0, 7.5)], 0.18, marks)
    _blend(img, side, np.asarray(style.sidewalk, np.float32) * (0.9 + 0.15 * g)[..., None])
    _blend(img, road, asphalt)
    veg *= 1 - side * INV255
    _blend(img, marks, np.asarray(style.marking, np.float32) * 0.95)
    _blend(img, zebra, style.crosswalk)


def _footprints_and_occlusion(img: np.ndarray, style: RegionStyle, lay: Layout, P: Painter) -> None:
    """Pools, the footprints under buildings, and ambient occlusion: contact darkening around
    buildings and under tree crowns."""
    m = P.polys(lay.pools)
    _blend(img, cv2.dilate(m, np.ones((3, 3), np.uint8)), (235, 235, 230))
    _blend(img, cv2.erode(m, np.ones((3, 3), np.uint8)), (70, 170, 200))
    foot = P.polys([_corners(b) for b in lay.buildings])
    _blend(img, foot, (60, 60, 60))
    occl = foot.astype(np.float32) * INV255
    crowns = P.mask()
    for t in lay.trees:
        c = P.px(np.array([t.x, t.y]))
        radius = int(t.r * 0.8 / P.res * (1 << SHIFT))
        cv2.circle(crowns, tuple(int(v) for v in c), radius, 255, -1, cv2.LINE_AA, SHIFT)
    ao = (
        cv2.GaussianBlur(occl, (0, 0), 1.5 / P.res) * 0.45
        + cv2.GaussianBlur(crowns.astype(np.float32) * INV255, (0, 0), 2.0 / P.res) * 0.3
    )
    img *= (1 - np.clip(ao, 0, 0.6))[..., None]


def _corners(b) -> np.ndarray:
    return rect_corners(b.cx, b.cy, b.hx, b.hy, b.angle)
