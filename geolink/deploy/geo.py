"""Geodesy helpers for localization: great-circle distance, EXIF GPS, ``name,lat,lon`` files.

No torch here: this module is on the ONNX (torch-free) localization path.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from geolink.errors import DataError
from geolink.utils.geodesy import EARTH_RADIUS_M, haversine_m, metres_per_degree

__all__ = ["EARTH_RADIUS_M", "haversine_m", "metres_per_degree"]  # re-exported


def _rational(x: object) -> float:
    # PIL gives IFDRational (float-able) or (num, den) tuples depending on the writer.
    if isinstance(x, tuple) and len(x) == 2:
        return float(x[0]) / float(x[1]) if float(x[1]) else 0.0
    return float(x)  # type: ignore[arg-type]


def _dms_to_deg(dms: object, ref: object) -> float:
    d, m, s = (_rational(v) for v in dms)  # type: ignore[union-attr]
    deg = d + m / 60.0 + s / 3600.0
    ref = ref.decode() if isinstance(ref, bytes) else str(ref)
    return -deg if ref.strip().upper() in ("S", "W") else deg


def exif_gps(source: str | os.PathLike | bytes) -> tuple[float, float] | None:
    """(lat, lon) in degrees from the EXIF GPS block of an image file or its bytes; None if absent.

    A missing, unreadable or malformed GPS block gives None (a query without a known position),
    never an error.
    """
    try:
        from PIL import Image

        fp = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(fp) as im:
            gps = im.getexif().get_ifd(0x8825)  # GPSInfo IFD
    except Exception:
        return None
    try:
        lat = _dms_to_deg(gps[2], gps.get(1, "N"))
        lon = _dms_to_deg(gps[4], gps.get(3, "E"))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return lat, lon


def read_coords_csv(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Read a ``name,lat,lon[,footprint_m]`` CSV into ``{name: {"lat", "lon"[, "footprint_m"]}}``.

    Raises :class:`DataError` naming the file and line for a missing column or a bad number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"coordinates file not found: {path} (expected a CSV with name,lat,lon)")
    try:
        return _read_coords(path)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV (expected UTF-8 name,lat,lon lines)") from None
    except csv.Error as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from None


def _read_coords(path: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = [c.strip().lower() for c in (reader.fieldnames or [])]
        reader.fieldnames = cols
        missing = [c for c in ("name", "lat", "lon") if c not in cols]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)}; expected header name,lat,lon "
                f"(found: {', '.join(cols) or 'nothing'})"
            )
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
            try:
                rec = {"lat": float(row["lat"]), "lon": float(row["lon"])}
                if row.get("footprint_m"):
                    rec["footprint_m"] = float(row["footprint_m"])
            except ValueError:
                raise DataError(
                    f"{path}:{line}: lat/lon must be numbers, got {row.get('lat')!r}, {row.get('lon')!r}"
                ) from None
            if not (-90 <= rec["lat"] <= 90 and -180 <= rec["lon"] <= 180):
                raise DataError(f"{path}:{line}: lat/lon out of range: {rec['lat']}, {rec['lon']}")
            fp = rec.get("footprint_m")
            if fp is not None and not (math.isfinite(fp) and fp > 0):
                raise DataError(f"{path}:{line}: footprint_m must be a positive number, got {fp}")
            if not row["name"]:
                raise DataError(f"{path}:{line}: empty name")
            out[row["name"]] = rec
    if not out:
        raise DataError(f"{path}: no rows; expected one line per tile/location (name,lat,lon)")
    return out


def lookup_position(
    path: str | os.PathLike, coords: dict[str, dict[str, float]]
) -> tuple[float, float] | None:
    """Known position of a query image from a coordinates table, by file name, stem, or parent
    folder name (University-1652 layout: ``<location>/image-01.jpg`` with ``name`` = location)."""
    p = Path(path)
    for key in (p.name, p.stem, p.parent.name):
        if key in coords:
            return coords[key]["lat"], coords[key]["lon"]
    return None
