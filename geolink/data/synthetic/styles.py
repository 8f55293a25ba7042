"""Region styles: what makes one synthetic region a different domain from another.

A style fixes the layout statistics (road pattern, building density, footprint and height
distributions, vegetation, water) and the appearance (palettes, materials, sun, colour grading)
of every location generated in that region. Regions share the kinds of things (buildings, roads,
trees, cars, parking, water) but differ strongly in appearance and moderately in layout, so
cross-region evaluation is a real domain shift.

Colours are sRGB triples in 0..255. Angles are degrees; sun azimuth is clockwise from north.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from geolink.utils.registry import Registry

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Grading:
    """Camera colour grading applied in the shader (linear light, then gamma)."""

    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    exposure: float = 1.0
    saturation: float = 1.0
    contrast: float = 1.0
    haze_m: float = 1800.0  # distance at which aerial haze reaches 1 - 1/e
    blur_px: float = 0.0  # Gaussian sigma applied after rendering (satellite optics)
    vegetation_shift: tuple[float, float, float] = (1.0, 1.0, 1.0)  # "season" tint on grass/trees


@dataclass(frozen=True)
class RegionStyle:
    name: str
    origin_latlon: tuple[float, float]
    # roads
    road_kind: str  # "grid" | "organic"
    block_m: tuple[float, float]  # grid spacing range (grid) / ring radius range (organic)
    road_width_m: float
    sidewalk_m: float
    road_drop_prob: float  # grid segments left out (cul-de-sacs, irregular blocks)
    grid_angle_deg: tuple[float, float]
    asphalt: Color
    sidewalk: Color
    marking: Color
    # buildings
    building_attempts_per_ha: float
    footprint_m: tuple[float, float]
    aspect: tuple[float, float]
    floors: tuple[int, int]
    floor_m: float
    roof_probs: dict[str, float]  # flat / gable / solar (flat with panels)
    roof_flat: tuple[Color, ...]
    roof_tiles: tuple[Color, ...]
    facade: tuple[Color, ...]
    window: Color
    window_ratio: float  # fraction of a bay that is glass
    target_scale: float  # landmark footprint relative to footprint_m[1]
    target_floors: tuple[int, int]
    setback_m: float
    # ground and vegetation
    grass: tuple[Color, ...]
    soil: Color
    plaza: Color
    trees_per_ha: float
    canopy_m: tuple[float, float]
    foliage: tuple[Color, ...]
    water_prob: float
    pool_prob: float
    parking_prob: float
    cars_per_100m: float
    car_colors: tuple[Color, ...] = (
        (235, 235, 235),
        (30, 30, 32),
        (120, 122, 128),
        (170, 30, 30),
        (30, 60, 130),
        (200, 200, 205),
        (90, 90, 60),
    )
    paved: float = 0.0  # fraction of open ground that is paved (concrete) instead of grass
    crosswalk: Color = (232, 232, 228)
    far_ground: tuple[Color, ...] = ((96, 110, 70), (120, 115, 90), (80, 96, 66))
    # light and cameras
    drone_sun: tuple[float, float] = (135.0, 50.0)  # azimuth, elevation
    satellite_sun: tuple[float, float] = (160.0, 62.0)
    sun_color: Color = (255, 246, 230)
    sky_color: Color = (185, 200, 215)
    drone_grading: Grading = field(default_factory=Grading)
    satellite_grading: Grading = field(default_factory=Grading)


STYLES: Registry[RegionStyle] = Registry("region style")


@STYLES.register("campus")
def campus() -> RegionStyle:
    """University-1652-like: organic ring roads, large flat-roofed halls, lawns, trees, ponds."""
    return RegionStyle(
        name="campus",
        origin_latlon=(30.5145, 114.4131),
        road_kind="organic",
        block_m=(62.0, 82.0),
        road_width_m=8.0,
        sidewalk_m=2.5,
        road_drop_prob=0.0,
        grid_angle_deg=(0.0, 180.0),
        asphalt=(78, 78, 80),
        sidewalk=(178, 172, 160),
        marking=(235, 232, 220),
        building_attempts_per_ha=9.0,
        footprint_m=(18.0, 46.0),
        aspect=(1.0, 2.6),
        floors=(2, 6),
        floor_m=3.8,
        roof_probs={"flat": 0.75, "gable": 0.1, "solar": 0.15},
        roof_flat=((196, 196, 190), (170, 168, 160), (140, 150, 155), (205, 200, 185)),
        roof_tiles=((150, 70, 50), (110, 90, 80)),
        facade=((190, 120, 90), (215, 200, 170), (200, 190, 180), (175, 110, 85)),
        window=(50, 70, 85),
        window_ratio=0.45,
        target_scale=1.7,
        target_floors=(4, 8),
        setback_m=5.0,
        grass=((92, 128, 58), (110, 140, 64), (80, 112, 52)),
        soil=(140, 120, 90),
        plaza=(190, 180, 165),
        trees_per_ha=55.0,
        canopy_m=(2.5, 5.0),
        foliage=((52, 82, 38), (66, 98, 44), (44, 70, 40), (80, 104, 50)),
        water_prob=0.45,
        pool_prob=0.0,
        parking_prob=0.8,
        cars_per_100m=2.5,
        drone_sun=(135.0, 48.0),
        satellite_sun=(165.0, 63.0),
        drone_grading=Grading((1.03, 1.0, 0.96), 1.05, 1.05, 1.05, 1800.0, 0.0),
        satellite_grading=Grading(
            (0.98, 1.0, 1.04), 1.0, 0.8, 0.92, 900.0, 0.6, vegetation_shift=(1.12, 1.02, 0.85)
        ),
    )


@STYLES.register("suburb")
def suburb() -> RegionStyle:
    """SUES-200-like: suburban grid, small gabled houses with tiled roofs, yards, pools."""
    return RegionStyle(
        name="suburb",
        origin_latlon=(30.8712, 121.9085),
        road_kind="grid",
        block_m=(48.0, 70.0),
        road_width_m=7.0,
        sidewalk_m=1.8,
        road_drop_prob=0.25,
        grid_angle_deg=(0.0, 90.0),
        asphalt=(64, 66, 70),
        sidewalk=(190, 188, 182),
        marking=(236, 200, 70),
        building_attempts_per_ha=110.0,
        footprint_m=(9.0, 15.0),
        aspect=(1.0, 1.8),
        floors=(1, 3),
        floor_m=3.0,
        roof_probs={"flat": 0.1, "gable": 0.8, "solar": 0.1},
        roof_flat=((120, 120, 118), (150, 145, 140)),
        roof_tiles=((165, 68, 48), (120, 58, 45), (75, 78, 85), (140, 95, 65), (100, 60, 50)),
        facade=((235, 230, 215), (225, 210, 180), (200, 210, 215), (240, 240, 235)),
        window=(40, 50, 60),
        window_ratio=0.3,
        target_scale=2.4,
        target_floors=(2, 4),
        setback_m=2.5,
        grass=((104, 136, 62), (124, 146, 70), (96, 122, 60)),
        soil=(150, 128, 96),
        plaza=(205, 200, 190),
        trees_per_ha=35.0,
        canopy_m=(2.0, 4.2),
        foliage=((60, 90, 42), (80, 104, 46), (96, 100, 52), (58, 78, 40)),
        water_prob=0.15,
        pool_prob=0.18,
        parking_prob=0.3,
        cars_per_100m=4.0,
        far_ground=((110, 125, 76), (132, 122, 92), (160, 150, 120)),
        drone_sun=(235.0, 34.0),
        satellite_sun=(150.0, 55.0),
        sun_color=(255, 236, 205),
        sky_color=(200, 205, 210),
        drone_grading=Grading((1.06, 1.0, 0.92), 1.0, 1.1, 1.08, 1500.0, 0.0),
        satellite_grading=Grading(
            (0.96, 1.0, 1.03), 1.05, 0.85, 0.9, 800.0, 0.7, vegetation_shift=(0.95, 1.05, 0.95)
        ),
    )


@STYLES.register("downtown")
def downtown() -> RegionStyle:
    """DenseUAV-like: dense blocks of mid/high-rise concrete and glass, little greenery."""
    return RegionStyle(
        name="downtown",
        origin_latlon=(30.3188, 120.3632),
        road_kind="grid",
        block_m=(58.0, 80.0),
        road_width_m=11.0,
        sidewalk_m=3.5,
        road_drop_prob=0.05,
        grid_angle_deg=(0.0, 90.0),
        asphalt=(52, 54, 58),
        sidewalk=(150, 150, 148),
        marking=(245, 245, 245),
        building_attempts_per_ha=140.0,
        footprint_m=(14.0, 30.0),
        aspect=(1.0, 2.0),
        floors=(3, 12),
        floor_m=3.3,
        roof_probs={"flat": 0.65, "gable": 0.0, "solar": 0.35},
        roof_flat=((110, 112, 115), (150, 150, 150), (85, 88, 92), (175, 172, 168)),
        roof_tiles=((90, 90, 95),),
        facade=((170, 172, 175), (140, 150, 162), (196, 190, 178), (120, 132, 145)),
        window=(90, 120, 145),
        window_ratio=0.65,
        target_scale=1.3,
        target_floors=(10, 18),
        setback_m=1.0,
        grass=((80, 105, 60), (95, 115, 66)),
        soil=(120, 110, 95),
        plaza=(165, 160, 152),
        trees_per_ha=14.0,
        canopy_m=(2.0, 3.5),
        foliage=((50, 75, 45), (62, 88, 50)),
        water_prob=0.05,
        pool_prob=0.0,
        parking_prob=0.35,
        cars_per_100m=7.0,
        paved=0.8,
        far_ground=((105, 105, 102), (88, 92, 90), (125, 122, 115)),
        drone_sun=(100.0, 62.0),
        satellite_sun=(195.0, 48.0),
        sun_color=(245, 248, 255),
        sky_color=(175, 185, 198),
        drone_grading=Grading((0.95, 1.0, 1.06), 1.0, 0.85, 1.1, 1300.0, 0.0),
        satellite_grading=Grading(
            (1.04, 1.0, 0.95), 1.1, 0.9, 0.85, 700.0, 0.8, vegetation_shift=(1.0, 1.0, 1.0)
        ),
    )


@STYLES.register("campus_autumn")
def campus_autumn() -> RegionStyle:
    """The near domain shift of campus: the same layout statistics in a new area (its own
    layout draws), autumn vegetation, shifted roof and facade palettes, an afternoon sun."""
    base = campus()
    return replace(
        base,
        name="campus_autumn",
        origin_latlon=(30.6021, 114.2533),
        roof_flat=((180, 182, 184), (158, 150, 140), (128, 138, 150), (210, 206, 196)),
        roof_tiles=((128, 62, 48), (96, 84, 80)),
        facade=((205, 140, 105), (200, 196, 184), (182, 176, 170), (160, 104, 84)),
        grass=((124, 124, 60), (138, 132, 70), (110, 110, 56)),
        soil=(150, 124, 92),
        foliage=((150, 98, 42), (122, 112, 46), (168, 124, 52), (98, 94, 42)),
        drone_sun=(210.0, 38.0),
        satellite_sun=(150.0, 55.0),
        sun_color=(255, 238, 210),
        drone_grading=Grading((1.06, 1.0, 0.93), 1.0, 1.0, 1.05, 1600.0, 0.0),
        satellite_grading=Grading(
            (0.97, 1.0, 1.05), 1.02, 0.85, 0.9, 850.0, 0.6, vegetation_shift=(1.05, 1.0, 0.9)
        ),
    )


def get_style(name: str) -> RegionStyle:
    """The style of a region named ``name``.

    A region named ``campus_2`` uses the style ``campus`` with its geodetic origin moved
    0.25 degrees north-east per step of the suffix, so its locations get their own lat/lon.
    """
    if name in STYLES:
        return STYLES.build(name)
    base, _, suffix = name.rpartition("_")
    if base not in STYLES or not suffix.isdigit():
        STYLES.get(name)  # raises ConfigError listing the available styles
    style = STYLES.build(base)
    lat, lon = style.origin_latlon
    k = int(suffix) - 1
    return replace(style, origin_latlon=(lat + 0.25 * k, lon + 0.25 * k))
