"""A contact sheet of a generated benchmark: per location, satellite + drone views + depth.

Used for ``docs/img/synthetic_contact_sheet.png`` and by the demo report. When
``geolink.data.weather`` is available, one extra row shows a drone view under each weather
condition.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from geolink.errors import DataError
from geolink.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)
WEATHER_ROW = ("fog_rain", "fog_snow", "rain_snow", "wind", "dark", "fog", "rain", "snow", "light")


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot read image {path}")
    return img[..., ::-1]


def _tile(img: np.ndarray, size: int, label: str = "") -> np.ndarray:
    t = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=cv2.INTER_AREA)
    if label:
        cv2.putText(t, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(
            t, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA
        )
    return t


def depth_to_rgb(depth: np.ndarray) -> np.ndarray:
    """Colour-map a z-depth map (H, W) metres -> (H, W, 3) uint8; 0 (no geometry) is black."""
    valid = depth > 0
    if not valid.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    lo, hi = np.percentile(depth[valid], [1, 99])
    d = ((depth - lo) / max(hi - lo, 1e-6)).clip(0, 1)
    rgb = cv2.applyColorMap((255 * (1 - d)).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    return np.where(valid[..., None], rgb, 0).astype(np.uint8)


def contact_sheet(
    root: str | Path,
    out_png: str | Path | None = None,
    locations_per_region: int = 2,
    drone_views: int = 3,
    tile: int = 192,
    weather: bool = True,
) -> np.ndarray:
    """Build the sheet for a benchmark root written by ``generate``; (H, W, 3) uint8 RGB.

    Each row: satellite tile, ``drone_views`` drone images spread over the orbit, and the depth
    of the first of them. Written atomically to ``out_png`` when given.
    """
    root = Path(root)
    meta_path = root / "synth.json"
    if not meta_path.exists():
        raise DataError(f"{meta_path} not found: not a synthetic benchmark root")
    rows = []
    first_drone = None
    for region in json.loads(meta_path.read_text())["regions"]:
        cams = sorted((root / region / "cameras").glob("*.json"))[:locations_per_region]
        for cam_file in cams:
            cam = json.loads(cam_file.read_text())
            base = root / region
            tiles = [
                _tile(
                    _read(base / cam["satellite"]["image"]), tile, f"{region} {cam['location']} sat"
                )
            ]
            drones = cam["drone"]
            picks = np.linspace(0, len(drones) - 1, drone_views + 1).astype(int)[:-1]
            picks = [int(i) for i in picks]
            for i in picks:
                tiles.append(_tile(_read(base / drones[i]["image"]), tile, f"drone {i + 1}"))
            d0 = drones[picks[0]]
            if (base / d0["depth"]).exists():
                tiles.append(_tile(depth_to_rgb(np.load(base / d0["depth"])), tile, "depth"))
            if first_drone is None:
                first_drone = (
                    _read(base / d0["image"]),
                    f"{region}/{cam['location']}/{d0['image']}",
                )
            rows.append(np.hstack(tiles))
    if not rows:
        raise DataError(f"no rendered locations under {root}")
    if weather and first_drone is not None:
        n_tiles = max(r.shape[1] for r in rows) // tile
        row = _weather_row(*first_drone, tile, n_tiles - 1)
        if row is not None:
            rows.append(row)
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    if out_png is not None:
        ok, buf = cv2.imencode(".png", sheet[..., ::-1])
        atomic_write_bytes(out_png, buf.tobytes())
    return sheet


def _weather_row(img: np.ndarray, key: str, tile: int, n: int) -> np.ndarray | None:
    """The clear image and its first ``n`` weather conditions (the paper's four come first)."""
    try:
        from geolink.data.weather import apply_weather
    except ImportError:
        log.info("geolink.data.weather not available: no weather row")
        return None
    tiles = [_tile(img, tile, "clear")]
    for cond in WEATHER_ROW[:n]:
        try:
            tiles.append(_tile(apply_weather(img, cond, key), tile, cond))
        except Exception as e:  # a condition another version does not know: skip it
            log.warning("weather %s failed: %s", cond, e)
    return np.hstack(tiles)
