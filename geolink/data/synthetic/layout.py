"""Procedural layout of one location: roads, the target building, buildings, trees, cars, water.

Everything is in the local east-north-up frame of the location (metres, origin at the target,
ground at z = 0). The layout is plain data; :mod:`mesh` turns it into triangles and
:mod:`ground` paints it into the ground texture. :func:`height_at` gives the analytic top surface
(used by tests to check that depth maps and cameras agree with the geometry).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geolink.data.synthetic.occupancy import Occupancy
from geolink.data.synthetic.styles import RegionStyle


@dataclass
class Building:
    cx: float
    cy: float
    hx: float  # half size along the local x axis (rotated by ``angle``)
    hy: float
    angle: float  # radians, counter-clockwise from east
    height: float  # wall (eave) height, metres
    roof: str  # "flat" | "gable" | "solar" (buildings); "unit" | "panel" (rooftop boxes)
    ridge: float = 0.0  # gable ridge height above the eave
    facade: int = 0  # atlas cell indices within their family
    roof_cell: int = 0
    tint: float = 1.0
    target: bool = False
    base: float = 0.0  # z of the bottom (rooftop units sit on their roof)


@dataclass
class Tree:
    x: float
    y: float
    r: float  # canopy radius
    rz: float  # canopy vertical half-height
    z: float  # canopy centre height
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    foliage: int = 0


@dataclass
class Car:
    x: float
    y: float
    angle: float
    color: tuple[int, int, int]


@dataclass
class Layout:
    half: float
    roads: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (N, 2) polyline, width
    buildings: list[Building] = field(default_factory=list)
    units: list[Building] = field(default_factory=list)  # rooftop units / panels (boxes)
    trees: list[Tree] = field(default_factory=list)
    cars: list[Car] = field(default_factory=list)
    water: list[np.ndarray] = field(default_factory=list)  # (N, 2) polygons
    pools: list[np.ndarray] = field(default_factory=list)  # (4, 2) polygons
    parking: list[np.ndarray] = field(default_factory=list)  # (4, 2) polygons
    stalls: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # line segments
    plazas: list[np.ndarray] = field(default_factory=list)


def rect_corners(cx: float, cy: float, hx: float, hy: float, angle: float) -> np.ndarray:
    """(4, 2) corners of a rotated rectangle, counter-clockwise."""
    c, s = np.cos(angle), np.sin(angle)
    local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    return local @ np.array([[c, s], [-s, c]]) + [cx, cy]


def _grid_roads(style: RegionStyle, rng: np.random.Generator, half: float) -> list:
    theta = np.deg2rad(rng.uniform(*style.grid_angle_deg))
    sx, sy = rng.uniform(*style.block_m, size=2)
    ext = half * 1.5
    us = (np.arange(-np.ceil(ext / sx), np.ceil(ext / sx)) + 0.5) * sx
    vs = (np.arange(-np.ceil(ext / sy), np.ceil(ext / sy)) + 0.5) * sy
    ax, ay = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
    roads = []
    for lines, cross, d_line, d_cross, avenue_every in ((us, vs, ax, ay, 3), (vs, us, ay, ax, 4)):
        for k, a in enumerate(lines):
            width = style.road_width_m * (1.35 if k % avenue_every == 1 else 1.0)
            for b0, b1 in zip(cross[:-1], cross[1:], strict=True):
                if rng.random() < style.road_drop_prob:
                    continue
                seg = np.array([a * d_line + b0 * d_cross, a * d_line + b1 * d_cross])
                roads.append((seg, width))
    return roads


def _organic_roads(style: RegionStyle, rng: np.random.Generator, half: float) -> list:
    r0 = rng.uniform(*style.block_m)
    t = np.linspace(0, 2 * np.pi, 73)
    wobble = 1 + 0.12 * np.sin(2 * t + rng.uniform(0, 6)) + 0.08 * np.sin(3 * t + rng.uniform(0, 6))
    ring = np.stack([r0 * wobble * np.cos(t), r0 * wobble * 0.85 * np.sin(t)], -1)
    ring = ring @ _rot(rng.uniform(0, np.pi))
    roads = [(ring, style.road_width_m)]
    n_spokes = int(rng.integers(3, 5))
    phis = np.sort(rng.uniform(0, 2 * np.pi, n_spokes))
    for phi in phis:
        i = int(round(phi / (2 * np.pi) * 72)) % 72
        start = ring[i]
        d = start / np.linalg.norm(start)
        bend = np.array([-d[1], d[0]]) * rng.uniform(-0.5, 0.5)
        s = np.linspace(0, 1, 30)[:, None]
        end = start + d * half * 1.8
        mid = (start + end) / 2 + bend * half
        curve = (1 - s) ** 2 * start + 2 * (1 - s) * s * mid + s**2 * end
        roads.append((curve, style.road_width_m * 1.2))
    # an outer arc
    r1 = r0 * rng.uniform(1.9, 2.3)
    t = np.linspace(rng.uniform(0, 2 * np.pi), 0, 40) + rng.uniform(2.0, 3.5)
    arc = np.stack([r1 * np.cos(t), r1 * np.sin(t)], -1)
    roads.append((arc, style.road_width_m))
    return roads


def _rot(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, s], [-s, c]])


def _grid_angle(roads: list) -> float:
    seg = roads[0][0]
    d = seg[-1] - seg[0]
    return float(np.arctan2(d[1], d[0]))


def _roof(style: RegionStyle, rng: np.random.Generator) -> str:
    kinds = list(style.roof_probs)
    p = np.array([style.roof_probs[k] for k in kinds], np.float64)
    return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


def _make_building(
    style: RegionStyle,
    rng: np.random.Generator,
    cx: float,
    cy: float,
    angle: float,
    scale=1.0,
    floors: tuple[int, int] | None = None,
) -> Building:
    w = rng.uniform(*style.footprint_m) * scale
    aspect = rng.uniform(*style.aspect)
    lo, hi = floors or style.floors
    n_floors = int(rng.integers(lo, hi + 1))
    roof = _roof(style, rng)
    hx, hy = w * np.sqrt(aspect) / 2, w / np.sqrt(aspect) / 2
    ridge = min(hx, hy) * rng.uniform(0.5, 0.8) if roof == "gable" else 0.0
    if roof == "gable" and hy > hx:  # ridge runs along the local x axis
        hx, hy, angle = hy, hx, angle + np.pi / 2
    return Building(
        cx,
        cy,
        hx,
        hy,
        angle,
        n_floors * style.floor_m,
        roof,
        ridge,
        facade=int(rng.integers(16)),
        roof_cell=int(rng.integers(6 if roof != "gable" else 4)),
        tint=float(rng.uniform(0.88, 1.1)),
    )


def _rooftop_units(b: Building, rng: np.random.Generator) -> list[Building]:
    units = []
    if b.roof == "gable":
        return units
    area = 4 * b.hx * b.hy
    n = int(rng.integers(1, 4) + area / 400) if b.roof == "flat" else int(rng.integers(2, 6))
    c, s = np.cos(b.angle), np.sin(b.angle)
    for _ in range(n):
        if b.roof == "solar":
            hx, hy, h = min(b.hx * 0.35, 6.0), 1.0, 0.35
        else:
            hx, hy, h = rng.uniform(0.8, 2.5), rng.uniform(0.8, 2.0), rng.uniform(0.8, 2.2)
        if hx > b.hx * 0.8 or hy > b.hy * 0.8:
            continue
        lx = rng.uniform(-b.hx + hx + 0.5, b.hx - hx - 0.5)
        ly = rng.uniform(-b.hy + hy + 0.5, b.hy - hy - 0.5)
        x, y = b.cx + c * lx - s * ly, b.cy + s * lx + c * ly
        kind = "panel" if b.roof == "solar" else "unit"
        units.append(Building(x, y, hx, hy, b.angle, b.height + h, kind, base=b.height))
    return units


def generate_layout(style: RegionStyle, rng: np.random.Generator, half: float) -> Layout:
    """Place everything of one location inside the square [-half, half]^2 (metres)."""
    lay = Layout(half=half)
    occ = Occupancy(half)
    lay.roads = (_organic_roads if style.road_kind == "organic" else _grid_roads)(style, rng, half)
    for pts, w in lay.roads:
        occ.mark_line(pts, w + 2 * style.sidewalk_m + 2 * style.setback_m)
    base_angle = _grid_angle(lay.roads) if style.road_kind == "grid" else rng.uniform(0, np.pi)

    # the target: a landmark at the origin (a main hall and a wing)
    tgt = _make_building(style, rng, 0.0, 0.0, base_angle, style.target_scale, style.target_floors)
    tgt.target = True
    parts = [tgt]
    if rng.random() < 0.7 and tgt.roof != "gable":
        side = rng.choice([-1, 1])
        c, s = np.cos(tgt.angle), np.sin(tgt.angle)
        wx, wy = tgt.hx * rng.uniform(0.25, 0.45), tgt.hy * rng.uniform(0.8, 1.4)
        ox, oy = side * (tgt.hx - wx), side * (tgt.hy + wy * 0.9)
        wing = Building(
            c * ox - s * oy,
            s * ox + c * oy,
            wx,
            wy,
            tgt.angle,
            tgt.height * rng.uniform(0.5, 0.8),
            "flat",
            facade=tgt.facade,
            roof_cell=tgt.roof_cell,
            tint=tgt.tint,
            target=True,
        )
        parts.append(wing)
    if style.name != "suburb":
        ext = max(max(b.hx, b.hy) + np.hypot(b.cx, b.cy) for b in parts) + 8
        lay.plazas.append(rect_corners(0, 0, ext, ext * 0.8, tgt.angle))
    for b in parts:
        lay.buildings.append(b)
        occ.mark_poly(rect_corners(b.cx, b.cy, b.hx + 4, b.hy + 4, b.angle))
    for p in lay.plazas:
        occ.mark_poly(p)

    _place_water(style, rng, lay, occ)
    _place_parking(style, rng, lay, occ, base_angle)
    _place_buildings(style, rng, lay, occ, base_angle)
    for b in list(lay.buildings):
        lay.units.extend(_rooftop_units(b, rng))
    _place_trees(style, rng, lay, occ)
    _place_cars(style, rng, lay)
    return lay


def _place_water(style, rng, lay: Layout, occ: Occupancy) -> None:
    if rng.random() >= style.water_prob:
        return
    for _ in range(30):
        c = rng.uniform(-lay.half * 0.8, lay.half * 0.8, 2)
        r = rng.uniform(12, 30)
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        rad = r * (1 + 0.25 * np.sin(2 * t + rng.uniform(0, 6)) + 0.1 * np.sin(5 * t))
        poly = c + np.stack([rad * np.cos(t), rad * 0.7 * np.sin(t)], -1)
        if occ.free_poly(poly):
            lay.water.append(poly)
            occ.mark_poly(poly)
            return


def _place_parking(style, rng, lay: Layout, occ: Occupancy, angle: float) -> None:
    n = int(rng.random() < style.parking_prob) + int(rng.random() < style.parking_prob * 0.5)
    for _ in range(n):
        for _ in range(40):
            c = rng.uniform(-lay.half * 0.7, lay.half * 0.7, 2)
            hx, hy = rng.uniform(12, 24), 7.5
            rows = 1 if rng.random() < 0.5 else 2
            hy *= rows
            poly = rect_corners(c[0], c[1], hx, hy, angle)
            if not occ.free_poly(rect_corners(c[0], c[1], hx + 2, hy + 2, angle)):
                continue
            lay.parking.append(poly)
            occ.mark_poly(rect_corners(c[0], c[1], hx + 2, hy + 2, angle))
            _stalls_and_cars(style, rng, lay, c, hx, hy, angle, rows)
            break


def _stalls_and_cars(style, rng, lay, c, hx, hy, angle, rows) -> None:
    R = _rot(angle).T  # local -> world (row vectors @ R.T)
    n_stalls = int(2 * hx // 2.6)
    for row in range(rows):
        y0 = -hy + row * 15.0  # each row: 5.5 m stalls + 2 m aisle space, mirrored
        for k in range(n_stalls + 1):
            x = -hx + k * 2.6
            for ya, yb in ((y0, y0 + 5.5), (y0 + 9.5, y0 + 15.0)):
                seg = np.array([[x, ya], [x, yb]]) @ R.T + c
                lay.stalls.append((seg[0], seg[1]))
            if k < n_stalls:
                for yc in (y0 + 2.75, y0 + 12.25):
                    if rng.random() < 0.6:
                        p = np.array([x + 1.3, yc]) @ R.T + c
                        col = style.car_colors[int(rng.integers(len(style.car_colors)))]
                        lay.cars.append(Car(p[0], p[1], angle + np.pi / 2, col))


def _place_buildings(style, rng, lay: Layout, occ: Occupancy, angle: float) -> None:
    area_ha = (2 * lay.half) ** 2 / 1e4
    organic = style.road_kind == "organic"
    n = int(style.building_attempts_per_ha * area_ha)
    centers = rng.uniform(-lay.half + 10, lay.half - 10, (n, 2))
    for cx, cy in centers:
        if not occ.free_point(cx, cy):  # cheap rejection before sampling a shape
            continue
        a = rng.uniform(0, np.pi) if organic and rng.random() < 0.3 else angle
        a += rng.choice([0.0, np.pi / 2])
        b = _make_building(style, rng, cx, cy, a)
        if not occ.free_poly(rect_corners(cx, cy, b.hx + 1.5, b.hy + 1.5, b.angle)):
            continue
        lay.buildings.append(b)
        occ.mark_poly(rect_corners(cx, cy, b.hx + style.setback_m, b.hy + style.setback_m, b.angle))
        if rng.random() < style.pool_prob:
            d = np.array([np.cos(b.angle), np.sin(b.angle)]) * (b.hx + 5)
            pc = np.array([cx, cy]) + d * rng.choice([-1, 1])
            pool = rect_corners(pc[0], pc[1], 2.0, 4.0, b.angle)
            lay.pools.append(pool)
            occ.mark_poly(pool)


def _place_trees(style, rng, lay: Layout, occ: Occupancy) -> None:
    area_ha = (2 * lay.half) ** 2 / 1e4
    n = int(style.trees_per_ha * area_ha * 3)
    xy = rng.uniform(-lay.half, lay.half, (n, 2))
    # clumps: acceptance follows a smooth noise field
    field_ = rng.random((8, 8))
    fx = ((xy + lay.half) / (2 * lay.half) * 7).clip(0, 6.999)
    i, j = fx[:, 0].astype(int), fx[:, 1].astype(int)
    dens = field_[i, j] * 0.6 + field_[np.minimum(i + 1, 7), j] * 0.4
    keep = (rng.random(n) < dens * 0.67) & occ.free_points(xy)
    for x, y in xy[keep]:
        r = rng.uniform(*style.canopy_m)
        rz = r * rng.uniform(0.7, 1.0)
        trunk = rng.uniform(1.5, 4.0)
        col = style.foliage[int(rng.integers(len(style.foliage)))]
        tint = tuple(float(v) / 255 * rng.uniform(0.85, 1.15) for v in col)
        lay.trees.append(Tree(float(x), float(y), r, rz, trunk + rz, tint, int(rng.integers(4))))


def _place_cars(style, rng, lay: Layout) -> None:
    for pts, w in lay.roads:
        d = np.diff(pts, axis=0)
        seg_len = np.linalg.norm(d, axis=1)
        total = seg_len.sum()
        n = rng.poisson(total / 100 * style.cars_per_100m)
        cum = np.concatenate([[0], np.cumsum(seg_len)])
        for s in rng.uniform(0, total, n):
            k = min(int(np.searchsorted(cum, s, side="right") - 1), len(d) - 1)
            t = (s - cum[k]) / max(seg_len[k], 1e-6)
            p = pts[k] + t * d[k]
            if np.any(np.abs(p) > lay.half - 3):
                continue
            u = d[k] / max(seg_len[k], 1e-6)
            side = rng.choice([-1, 1])
            p = p + np.array([-u[1], u[0]]) * side * w / 4
            ang = np.arctan2(u[1], u[0]) + (np.pi if side < 0 else 0.0)
            col = style.car_colors[int(rng.integers(len(style.car_colors)))]
            lay.cars.append(Car(float(p[0]), float(p[1]), float(ang), col))


CAR_HALF = (2.2, 0.9, 1.45)  # half length, half width, roof height
CAR_BODY_M = 1.0  # the body box is 1 m tall; the cabin sits on it
CABIN_HALF = (1.2, 0.8)
CABIN_OFFSET = -0.2  # cabin centre along the car's length (towards the back)


def height_at(lay: Layout, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Analytic height of the top surface at world (x, y) (arrays of the same shape), metres.

    Buildings (flat or gabled), rooftop units, cars and tree canopies (ellipsoids, ignoring the
    small vertex jitter of the rendered crowns); 0 on the ground.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    h = np.zeros(np.broadcast(x, y).shape)
    boxes = [*lay.buildings, *lay.units]
    for c in lay.cars:
        ox, oy = CABIN_OFFSET * np.cos(c.angle), CABIN_OFFSET * np.sin(c.angle)
        boxes.append(Building(c.x, c.y, CAR_HALF[0], CAR_HALF[1], c.angle, CAR_BODY_M, "car"))
        boxes.append(Building(c.x + ox, c.y + oy, *CABIN_HALF, c.angle, CAR_HALF[2], "car"))
    for b in boxes:
        c, s = np.cos(b.angle), np.sin(b.angle)
        lx, ly = c * (x - b.cx) + s * (y - b.cy), -s * (x - b.cx) + c * (y - b.cy)
        inside = (np.abs(lx) <= b.hx) & (np.abs(ly) <= b.hy)
        top = b.height + (b.ridge * (1 - np.abs(ly) / b.hy) if b.roof == "gable" else 0.0)
        h = np.where(inside, np.maximum(h, top), h)
    for t in lay.trees:
        q = 1 - ((x - t.x) ** 2 + (y - t.y) ** 2) / t.r**2
        top = t.z + t.rz * np.sqrt(np.clip(q, 0, None))
        h = np.where(q > 0, np.maximum(h, top), h)
    return h
