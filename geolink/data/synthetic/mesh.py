"""Turn a :class:`Layout` into one merged triangle soup (vectorised numpy, no per-vertex loops).

Each vertex has ``VERTEX_FLOATS`` float32 attributes, in this order:
position (3), normal (3), uv (2, tiling coordinates), atlas rect (x0, y0, w, h), atlas layer
(-1 = the location's ground texture), tint (3), ambient occlusion (1), vegetation (1).
"""

from __future__ import annotations

import numpy as np

from geolink.data.synthetic import textures as T
from geolink.data.synthetic.layout import (
    CABIN_HALF,
    CABIN_OFFSET,
    CAR_BODY_M,
    CAR_HALF,
    Building,
    Layout,
)

VERTEX_FLOATS = 18
PARAPET_M = 0.8
FAR_M = 4000.0  # the distant ground extends to +-FAR_M around the location
FAR_CELL_M = 500.0
QUAD = np.array([0, 1, 2, 0, 2, 3])


def _pack(pos, nrm, uv, rect, tint, ao, veg) -> np.ndarray:
    """Broadcast per-object attributes to vertices. All inputs (..., k) -> (M, VERTEX_FLOATS)."""
    shape = pos.shape[:-1]
    parts = [pos, nrm, uv, rect, tint, ao[..., None], veg[..., None]]
    out = np.concatenate([np.broadcast_to(p, (*shape, p.shape[-1])) for p in parts], -1)
    return out.reshape(-1, VERTEX_FLOATS).astype(np.float32)


def _rects(family: tuple[int, int, int], cells: np.ndarray) -> np.ndarray:
    """(N, 5) atlas rects for cell indices within a family."""
    layer, first, count = family
    return np.array([T.cell_rect(layer, first + int(c) % count) for c in cells], np.float32)


def _corners(cx, cy, hx, hy, ang) -> np.ndarray:
    """(N, 4, 2) counter-clockwise corners of rotated rectangles."""
    lx = np.stack([-hx, hx, hx, -hx], 1)
    ly = np.stack([-hy, -hy, hy, hy], 1)
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    return np.stack([cx[:, None] + c * lx - s * ly, cy[:, None] + s * lx + c * ly], -1)


def walls(
    cx, cy, hx, hy, ang, z0, z1, rect, tile_w, tile_h, tint, ao_bottom=0.55, snap=1
) -> np.ndarray:
    """Four textured walls per box; the texture snaps to whole 1/``snap`` tiles along a wall."""
    C = _corners(cx, cy, hx, hy, ang)
    out = []
    for i in range(4):
        a, b = C[:, i], C[:, (i + 1) % 4]
        d = b - a
        length = np.linalg.norm(d, axis=1)
        n = np.stack([d[:, 1], -d[:, 0], np.zeros_like(length)], -1) / length[:, None]
        reps = np.maximum(1, np.round(length / tile_w * snap)) / snap
        z0b, z1b = np.broadcast_to(z0, cx.shape), np.broadcast_to(z1, cx.shape)
        corner = np.stack(
            [np.c_[a, z0b], np.c_[b, z0b], np.c_[b, z1b], np.c_[a, z1b]], 1
        )  # (N, 4, 3)
        vt = (z1b - z0b) / tile_h
        uv = np.stack(
            [np.c_[0 * reps, 0 * vt], np.c_[reps, 0 * vt], np.c_[reps, vt], np.c_[0 * reps, vt]], 1
        )
        ao = np.array([ao_bottom, ao_bottom, 1.0, 1.0])[None].repeat(len(cx), 0)
        out.append(
            _pack(
                corner[:, QUAD],
                n[:, None],
                uv[:, QUAD],
                rect[:, None],
                tint[:, None],
                ao[:, QUAD],
                np.zeros((len(cx), 6)),
            )
        )
    return np.concatenate(out)


def tops(cx, cy, hx, hy, ang, z, rect, tile, tint) -> np.ndarray:
    C = _corners(cx, cy, hx, hy, ang)
    zz = np.broadcast_to(np.asarray(z, np.float64)[:, None, None], (len(cx), 4, 1))
    pos = np.concatenate([C, zz], -1)
    lu = np.stack([-hx, hx, hx, -hx], 1) + hx[:, None]
    lv = np.stack([-hy, -hy, hy, hy], 1) + hy[:, None]
    uv = np.stack([lu, lv], -1) / np.asarray(tile)[..., None, None]
    n = np.array([0.0, 0.0, 1.0])
    return _pack(
        pos[:, QUAD],
        n,
        uv[:, QUAD],
        rect[:, None],
        tint[:, None],
        np.ones((len(cx), 6)),
        np.zeros((len(cx), 6)),
    )


def gables(cx, cy, hx, hy, ang, eave, ridge, roof_rect, wall_rect, tile_w, tile_h, tint):
    """Two roof slopes (ridge along local x) and two gable triangles per building."""
    N = len(cx)
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]

    def world(lx, ly, z):  # (N, k) local -> (N, k, 3)
        return np.stack([cx[:, None] + c * lx - s * ly, cy[:, None] + s * lx + c * ly, z], -1)

    top = (eave + ridge)[:, None]
    e = eave[:, None] * np.ones((1, 4))
    out = []
    slope_len = np.hypot(hy, ridge)
    for sgn in (-1.0, 1.0):
        lx = np.stack([-hx, hx, hx, -hx], 1)
        ly = np.stack([sgn * hy, sgn * hy, 0 * hy, 0 * hy], 1)
        z = np.concatenate([e[:, :2], np.repeat(top, 2, 1)], 1)
        nl = np.stack([0 * hy, sgn * ridge, hy], -1) / slope_len[:, None]
        nrm = np.stack([-s[:, 0] * nl[:, 1], c[:, 0] * nl[:, 1], nl[:, 2]], -1)
        uv = np.stack([lx + hx[:, None], np.stack([0 * hy, 0 * hy, slope_len, slope_len], 1)], -1)
        out.append(
            _pack(
                world(lx, ly, z)[:, QUAD],
                nrm[:, None],
                (uv / 4.0)[:, QUAD],
                roof_rect[:, None],
                tint[:, None],
                np.ones((N, 6)),
                np.zeros((N, 6)),
            )
        )
    for sgn in (-1.0, 1.0):
        lx = np.repeat(sgn * hx[:, None], 3, 1)
        ly = np.stack([-hy, hy, 0 * hy], 1)
        z = np.concatenate([e[:, :2], top], 1)
        nrm = np.stack([sgn * c[:, 0], sgn * s[:, 0], 0 * hy], -1)
        uv = np.stack([(ly + hy[:, None]) / tile_w, (z - eave[:, None]) / tile_h], -1)
        out.append(
            _pack(
                world(lx, ly, z),
                nrm[:, None],
                uv,
                wall_rect[:, None],
                tint[:, None],
                np.ones((N, 3)),
                np.zeros((N, 3)),
            )
        )
    return np.concatenate(out)


def _icosphere(subdivisions: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: (12, 3) vertices and (20, 3) faces, x4 faces per subdivision."""
    p = (1 + 5**0.5) / 2
    v = [(-1, p, 0), (1, p, 0), (-1, -p, 0), (1, -p, 0), (0, -1, p), (0, 1, p), (0, -1, -p),
         (0, 1, -p), (p, 0, -1), (p, 0, 1), (-p, 0, -1), (-p, 0, 1)]  # fmt: skip
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
         (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
         (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]  # fmt: skip
    verts = [np.array(x, float) / np.linalg.norm(x) for x in v]
    mid: dict[tuple[int, int], int] = {}

    def m(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in mid:
            x = verts[a] + verts[b]
            verts.append(x / np.linalg.norm(x))
            mid[key] = len(verts) - 1
        return mid[key]

    for _ in range(subdivisions):
        faces = []
        for a, b, c in f:
            ab, bc, ca = m(a, b), m(b, c), m(c, a)
            faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = faces
    return np.array(verts), np.array(f)


# crowns are small on screen and vertex processing dominates llvmpipe's frame time
ICO_V, ICO_F = _icosphere(0)


def crowns(lay: Layout, rng: np.random.Generator) -> np.ndarray:
    """Tree canopies: jittered ellipsoids with leafy texture, smooth normals, darker undersides."""
    if not lay.trees:
        return np.zeros((0, VERTEX_FLOATS), np.float32)
    t = np.array([(tr.x, tr.y, tr.z, tr.r, tr.rz) for tr in lay.trees])
    jitter = 1 + 0.18 * (rng.random((len(t), len(ICO_V))) - 0.5)
    unit = ICO_V[None] * jitter[..., None]  # (T, 42, 3)
    pos = t[:, None, :3] + unit * np.stack([t[:, 3], t[:, 3], t[:, 4]], -1)[:, None]
    nrm = ICO_V[None] * np.stack([1 / t[:, 3], 1 / t[:, 3], 1 / t[:, 4]], -1)[:, None]
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    uv = (pos[..., :2] + pos[..., 2:3] * 0.6) / 3.0
    ao = 0.45 + 0.55 * (ICO_V[None, :, 2] + 1) / 2
    rect = _rects(T.FOLIAGE, np.array([tr.foliage for tr in lay.trees]))
    tint = np.array([tr.tint for tr in lay.trees])
    f = ICO_F.reshape(-1)
    return _pack(
        pos[:, f],
        nrm[:, f],
        uv[:, f],
        rect[:, None],
        tint[:, None],
        np.broadcast_to(ao, (len(t), len(ICO_V)))[:, f],
        np.ones((len(t), len(f))),
    )


def _arr(items: list[Building], *names: str) -> list[np.ndarray]:
    return [np.array([getattr(b, n) for b in items], np.float64) for n in names]


def ground(lay: Layout) -> np.ndarray:
    """The location's ground square (layer -1) and a ring of distant tiled land around it."""
    h, F = lay.half, FAR_M
    pos = np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]], np.float64)
    uv = np.c_[(pos[:, 0] + h) / (2 * h), (h - pos[:, 1]) / (2 * h)].clip(0, 0.9999)
    inner = _pack(
        pos[QUAD],
        np.array([0, 0, 1.0]),
        uv[QUAD],
        np.array([0, 0, 1, 1, -1.0]),
        np.ones(3),
        np.ones(6),
        np.ones(6),
    )
    # the ring is cut into cells of at most FAR_CELL_M: huge triangles get imprecise
    # attribute interpolation in llvmpipe's rasteriser (seen as wrong depth at image borders)
    out_edges = np.geomspace(h, F, 8)
    edges = np.concatenate([-out_edges[::-1], out_edges])
    edges = np.unique(np.concatenate([edges, np.arange(-F, F + 1, FAR_CELL_M)]))
    edges = edges[(edges <= -h) | (edges >= h)]
    x0, y0 = np.meshgrid(edges[:-1], edges[:-1], indexing="ij")
    x1, y1 = np.meshgrid(edges[1:], edges[1:], indexing="ij")
    keep = ~((x0 >= -h) & (x1 <= h) & (y0 >= -h) & (y1 <= h))
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    z = np.zeros_like(x0)
    p = np.stack([np.c_[x0, y0, z], np.c_[x1, y0, z], np.c_[x1, y1, z], np.c_[x0, y1, z]], 1)
    k = np.arange(len(x0)) * 7 % T.FAR_GROUND[2]
    ring = _pack(
        p[:, QUAD],
        np.array([0, 0, 1.0]),
        p[:, QUAD, :2] / 160.0,
        _rects(T.FAR_GROUND, k)[:, None],
        np.ones(3),
        np.ones((len(x0), 6)),
        np.full((len(x0), 6), 0.6),
    )
    return np.concatenate([inner, ring])


def _buildings(bs: list[Building], floor_m: float) -> list[np.ndarray]:
    cx, cy, hx, hy, ang, hgt, tint = _arr(bs, "cx", "cy", "hx", "hy", "angle", "height", "tint")
    fac = _rects(T.FACADE, np.array([b.facade for b in bs]))
    tint3 = np.repeat(tint[:, None], 3, 1)
    bay, storey = 3.4 * T.BAYS, floor_m * T.BAYS  # metres of wall per facade repeat
    parts = [walls(cx, cy, hx, hy, ang, 0.0, hgt, fac, bay, storey, tint3, snap=T.BAYS)]
    g = np.array([b.roof == "gable" for b in bs])
    cells = np.array([b.roof_cell for b in bs])
    if (~g).any():
        f = ~g
        rr = _rects(T.ROOF_FLAT, cells[f])
        parts.append(tops(cx[f], cy[f], hx[f], hy[f], ang[f], hgt[f], rr, 12.0, tint3[f]))
        # a parapet: a 0.8 m band of roof material around the edge of flat roofs
        box = (cx[f], cy[f], hx[f], hy[f], ang[f])
        parts.append(walls(*box, hgt[f], hgt[f] + PARAPET_M, rr, 12.0, 3.0, tint3[f] * 0.85, 1.0))
    if g.any():
        ridge = np.array([b.ridge for b in bs])[g]
        rr = _rects(T.ROOF_TILES, cells[g])
        box = (cx[g], cy[g], hx[g], hy[g], ang[g])
        parts.append(gables(*box, hgt[g], ridge, rr, fac[g], bay, storey, tint3[g]))
    return parts


def _units(units: list[Building]) -> list[np.ndarray]:
    """Rooftop units (ribbed metal boxes) and solar panels (thin boxes with cells on top)."""
    cx, cy, hx, hy, ang, hgt, base = _arr(units, "cx", "cy", "hx", "hy", "angle", "height", "base")
    n = len(units)
    panel = np.array([u.roof == "panel" for u in units])[:, None]
    top_rect = np.where(panel, _rects(T.SOLAR, np.zeros(n)), _rects(T.METAL, np.ones(n)))
    one = np.ones((n, 3))
    side = walls(cx, cy, hx, hy, ang, base, hgt, _rects(T.METAL, np.zeros(n)), 3.0, 3.0, one * 0.8)
    return [side, tops(cx, cy, hx, hy, ang, hgt, top_rect, 3.0, one)]


def _trunks(lay: Layout) -> np.ndarray:
    t = np.array([(tr.x, tr.y, tr.z) for tr in lay.trees])
    n = len(t)
    half, zero = np.full(n, 0.25), np.zeros(n)
    bark = _rects(T.BARK, zero)
    return walls(t[:, 0], t[:, 1], half, half, zero, 0.0, t[:, 2], bark, 1.0, 2.0, np.ones((n, 3)))


def _cars(lay: Layout) -> list[np.ndarray]:
    """A painted body box and a glass cabin box per car."""
    c = np.array([(k.x, k.y, k.angle) for k in lay.cars])
    col = np.array([k.color for k in lay.cars]) / 255.0
    n = len(c)
    x, y, a = c[:, 0], c[:, 1], c[:, 2]
    plain, glass = _rects(T.PLAIN, np.zeros(n)), _rects(T.GLASS, np.zeros(n))
    L, W = np.full(n, CAR_HALF[0]), np.full(n, CAR_HALF[1])
    cx, cy = x + CABIN_OFFSET * np.cos(a), y + CABIN_OFFSET * np.sin(a)
    CL, CW, H = np.full(n, CABIN_HALF[0]), np.full(n, CABIN_HALF[1]), CAR_HALF[2]
    return [
        walls(x, y, L, W, a, 0.0, CAR_BODY_M, plain, 4.4, 1.0, col, 0.4),
        tops(x, y, L, W, a, np.full(n, CAR_BODY_M), plain, 4.0, col),
        walls(cx, cy, CL, CW, a, CAR_BODY_M, H, glass, 2.4, 0.45, np.ones((n, 3)), 0.8),
        tops(cx, cy, CL, CW, a, np.full(n, H), plain, 4.0, col),
    ]


def build_mesh(lay: Layout, floor_m: float, rng: np.random.Generator) -> np.ndarray:
    """All geometry of a location as one (M, VERTEX_FLOATS) float32 triangle soup."""
    parts = [ground(lay)]
    if lay.buildings:
        parts += _buildings(lay.buildings, floor_m)
    if lay.units:
        parts += _units(lay.units)
    if lay.trees:
        parts += [crowns(lay, rng), _trunks(lay)]
    if lay.cars:
        parts += _cars(lay)
    return np.concatenate(parts).astype(np.float32)
