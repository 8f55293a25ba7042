"""Point clouds on disk: PLY (read: ascii / binary little- and big-endian vertex elements with
x, y, z and optional red, green, blue; write: binary little-endian float32 xyz + uint8 rgb) and
COLMAP sparse models (``points3D.txt``, the format the released GeoLink code trains on, and
``points3D.bin``), parsed here directly so a corrupt file gives a message naming it."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geolink.errors import DataError
from geolink.utils.io import atomic_path

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


@dataclass
class PointCloud:
    """A point cloud with optional per-point colours and confidences.

    Attributes:
        xyz: (N, 3) float32 positions.
        rgb: (N, 3) uint8 colours or None.
        conf: (N,) float32 confidences (backend-specific scale) or None.
        info: free-form facts about how the cloud was made (JSON-serialisable).
    """

    xyz: np.ndarray
    rgb: np.ndarray | None = None
    conf: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyz = np.asarray(self.xyz, dtype=np.float32).reshape(-1, 3)
        if self.rgb is not None:
            self.rgb = np.asarray(self.rgb).reshape(-1, 3)
            if self.rgb.dtype != np.uint8:
                self.rgb = np.clip(self.rgb, 0, 255).astype(np.uint8)
            if len(self.rgb) != len(self.xyz):
                raise ValueError("rgb and xyz have different lengths")
        if self.conf is not None:
            self.conf = np.asarray(self.conf, dtype=np.float32).reshape(-1)
            if len(self.conf) != len(self.xyz):
                raise ValueError("conf and xyz have different lengths")

    def __len__(self) -> int:
        return len(self.xyz)

    def select(self, mask_or_idx: np.ndarray) -> PointCloud:
        """A new cloud with the points selected by a boolean mask or an index array."""
        return PointCloud(
            self.xyz[mask_or_idx],
            None if self.rgb is None else self.rgb[mask_or_idx],
            None if self.conf is None else self.conf[mask_or_idx],
            dict(self.info),
        )


# ----------------------------------------------------------------------------------------- PLY
def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray | None = None) -> Path:
    """Write (N, 3) points (and optional (N, 3) uint8 colours) as binary little-endian PLY."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if rgb is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    data = np.empty(len(xyz), dtype=fields)
    data["x"], data["y"], data["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(xyz)}"]
    header += ["property float x", "property float y", "property float z"]
    if rgb is not None:
        rgb = np.asarray(rgb).reshape(-1, 3).astype(np.uint8)
        data["red"], data["green"], data["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header.append("end_header")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(data.tobytes())
    return Path(path)


def _parse_ply_header(path: Path, raw: bytes) -> tuple[str, list[tuple[str, int, list]], int]:
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise DataError(f"{path}: not a PLY file (expected a 'ply' header ending in 'end_header')")
    nl = raw.find(b"\n", end)
    body_start = (nl + 1) if nl >= 0 else len(raw)
    fmt, elements = None, []
    for line in raw[:end].decode("ascii", errors="replace").splitlines()[1:]:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format" and len(tok) >= 2:
            fmt = tok[1]
        elif tok[0] == "element" and len(tok) == 3 and tok[2].isdigit():
            elements.append((tok[1], int(tok[2]), []))
        elif tok[0] == "property" and elements:
            if tok[1] == "list":
                elements[-1][2].append((tok[-1], None))
            elif len(tok) == 3 and tok[1] in _PLY_TYPES:
                elements[-1][2].append((tok[2], _PLY_TYPES[tok[1]]))
            else:
                raise DataError(f"{path}: malformed PLY property line '{line}'")
        else:
            raise DataError(f"{path}: malformed PLY header line '{line}'")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise DataError(f"{path}: unsupported PLY format '{fmt}'")
    return fmt, elements, body_start


def read_ply(path: str | Path) -> PointCloud:
    """Read the vertex element of a PLY file (x, y, z and, if present, red, green, blue).

    Raises:
        DataError: missing file, malformed header, truncated body, or no x/y/z properties.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: PLY file not found")
    raw = path.read_bytes()
    fmt, elements, body_start = _parse_ply_header(path, raw)
    if not elements or elements[0][0] != "vertex":
        raise DataError(f"{path}: expected 'vertex' as the first PLY element")
    _, count, props = elements[0]
    names = [p[0] for p in props]
    if not {"x", "y", "z"} <= set(names):
        raise DataError(f"{path}: PLY vertex element lacks x/y/z properties (has {names})")
    if any(t is None for _, t in props):
        raise DataError(f"{path}: list properties in the vertex element are not supported")
    if fmt == "ascii":
        lines = raw[body_start:].decode("ascii", errors="replace").split("\n")[:count]
        try:
            table = np.array([ln.split()[: len(props)] for ln in lines], dtype=np.float64)
        except ValueError as e:
            raise DataError(f"{path}: malformed ASCII PLY body ({e})") from None
        if table.shape != (count, len(props)):
            raise DataError(f"{path}: expected {count} vertices with {len(props)} values each")
        cols = {n: table[:, i] for i, n in enumerate(names)}
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(n, order + t) for n, t in props])
        need = count * dtype.itemsize
        if len(raw) - body_start < need:
            raise DataError(
                f"{path}: truncated PLY body ({len(raw) - body_start} bytes, expected {need})"
            )
        arr = np.frombuffer(raw, dtype=dtype, count=count, offset=body_start)
        cols = {n: arr[n] for n in names}
    xyz = np.stack([cols["x"], cols["y"], cols["z"]], -1).astype(np.float32)
    rgb = None
    if {"red", "green", "blue"} <= set(names):
        rgb = np.stack([cols["red"], cols["green"], cols["blue"]], -1)
    return PointCloud(xyz, rgb)


# -------------------------------------------------------------------------------- COLMAP models
def _read_points3d_txt(path: Path) -> PointCloud:
    xyz, rgb, err, track = [], [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            tok = s.split()
            # POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID, POINT2D_IDX) pairs
            if len(tok) < 8 or (len(tok) - 8) % 2:
                raise DataError(
                    f"{path}:{lineno}: expected 'POINT3D_ID X Y Z R G B ERROR TRACK[]', "
                    f"got {len(tok)} fields"
                )
            try:
                xyz.append([float(t) for t in tok[1:4]])
                rgb.append([int(t) for t in tok[4:7]])
                err.append(float(tok[7]))
            except ValueError:
                raise DataError(f"{path}:{lineno}: non-numeric value in '{s[:80]}'") from None
            track.append((len(tok) - 8) // 2)
    return PointCloud(
        np.array(xyz, np.float32).reshape(-1, 3),
        np.array(rgb, np.int64).reshape(-1, 3),
        info={"error": np.array(err, np.float32), "track_length": np.array(track, np.int64)},
    )


def _read_points3d_bin(path: Path) -> PointCloud:
    raw = path.read_bytes()
    head = struct.Struct("<Q3d3BdQ")
    if len(raw) < 8:
        raise DataError(f"{path}: truncated COLMAP points3D.bin (no point count)")
    (n,) = struct.unpack_from("<Q", raw, 0)
    off = 8
    xyz = np.empty((n, 3), np.float32) if n < 1 << 32 else None
    if xyz is None:
        raise DataError(f"{path}: implausible point count {n} (corrupt file?)")
    rgb = np.empty((n, 3), np.uint8)
    err = np.empty(n, np.float32)
    track = np.empty(n, np.int64)
    for i in range(n):
        if off + head.size > len(raw):
            raise DataError(f"{path}: truncated COLMAP points3D.bin at point {i} of {n}")
        _, x, y, z, r, g, b, e, tl = head.unpack_from(raw, off)
        off += head.size + 8 * tl
        if off > len(raw):
            raise DataError(f"{path}: truncated COLMAP points3D.bin in the track of point {i}")
        xyz[i], rgb[i], err[i], track[i] = (x, y, z), (r, g, b), e, tl
    if off != len(raw):
        raise DataError(f"{path}: {len(raw) - off} trailing bytes after {n} points (corrupt?)")
    return PointCloud(xyz, rgb, info={"error": err, "track_length": track})


def read_colmap_points(path: str | Path) -> PointCloud:
    """Read the sparse points of a COLMAP model.

    Args:
        path: a ``points3D.txt`` / ``points3D.bin`` file or a model folder holding one
            (``.bin`` is preferred when both exist).
    Returns:
        PointCloud with xyz (N, 3), rgb (N, 3) and ``info["error"]`` (N,) reprojection error
        in pixels and ``info["track_length"]`` (N,) number of observing images.
    Raises:
        DataError: no points file, or a malformed one (the message names it and the line).
    """
    path = Path(path)
    if path.is_dir():
        cands = [path / "points3D.bin", path / "points3D.txt"]
        found = [c for c in cands if c.is_file()]
        if not found:
            raise DataError(f"{path}: no COLMAP points3D.bin or points3D.txt in this folder")
        path = found[0]
    if not path.is_file():
        raise DataError(f"{path}: COLMAP points file not found")
    if path.suffix == ".bin":
        return _read_points3d_bin(path)
    if path.suffix == ".txt":
        return _read_points3d_txt(path)
    raise DataError(f"{path}: expected a COLMAP points3D.txt or points3D.bin file")


def filter_colmap_points(
    cloud: PointCloud, min_track_length: int = 2, max_reproj_error: float = 4.0
) -> PointCloud:
    """Keep points seen in at least ``min_track_length`` images with error <= ``max_reproj_error``."""
    keep = np.ones(len(cloud), bool)
    if "track_length" in cloud.info:
        keep &= np.asarray(cloud.info["track_length"]) >= min_track_length
    if "error" in cloud.info:
        keep &= np.asarray(cloud.info["error"]) <= max_reproj_error
    out = cloud.select(keep)
    out.info = {k: v for k, v in cloud.info.items() if not isinstance(v, np.ndarray)}
    return out


# ------------------------------------------------------------------------------ post-processing
