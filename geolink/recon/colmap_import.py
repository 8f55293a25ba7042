"""``geolink reconstruct --import-colmap``: existing COLMAP models (``points3D.txt`` /
``.bin``, e.g. the released code's) post-processed into the reconstruction step's layout."""

from __future__ import annotations

import re
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from tqdm import tqdm

from geolink.errors import DataError
from geolink.recon.config import STEP, resolve
from geolink.recon.pipeline import (
    _check_key,
    _finish_cloud,
    _load_manifest,
    _new_manifest,
    _record,
    _write_manifest,
)
from geolink.recon.pointcloud import (
    DegenerateCloudError,
    PostprocessConfig,
    filter_colmap_points,
    read_colmap_points,
)
from geolink.utils import conf as conf_mod


def import_colmap(
    conf: dict[str, Any] | None, src_dir: str | Path, out_dir: str | Path, overwrite: bool = False
) -> Path:
    """Post-process existing COLMAP models (``points3D.txt`` / ``.bin``) into the same layout.

    Every folder under ``src_dir`` holding a points3D file is one scene, keyed by its path
    relative to ``src_dir`` (a trailing ``sparse`` or ``sparse/<n>`` is dropped), e.g. the
    released code's ``<loc>_group0/points3D.txt`` -> scene ``<loc>_group0``.

    Returns:
        Path of ``manifest.json`` (backend ``colmap_import``).
    """
    cfg = resolve(conf)
    conf = conf_mod.to_dict(cfg)
    post = PostprocessConfig(**{f.name: conf[f.name] for f in fields(PostprocessConfig)})
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise DataError(f"{src_dir}: COLMAP model folder not found")
    model_dirs = sorted(
        {p.parent for n in ("points3D.txt", "points3D.bin") for p in src_dir.rglob(n)}
    )
    if not model_dirs:
        raise DataError(f"{src_dir}: no points3D.txt or points3D.bin found below this folder")
    manifest_path = out_dir / "manifest.json"
    manifest = None if overwrite else _load_manifest(manifest_path)
    conf_mod.record(out_dir, cfg, STEP, overwrite)
    conf = {**conf, "backend": "colmap_import"}
    manifest = manifest or _new_manifest(conf, post)
    for model in tqdm(model_dirs, desc="import", unit="scene"):
        key = scene_key(model, src_dir)
        ply = f"points/{key}.ply"
        old = manifest["scenes"].get(key)
        if old is not None and old.get("status") == "ok" and (out_dir / ply).is_file():
            continue
        entry = _import_model(model, key, ply, conf, post, out_dir)
        _record(manifest, manifest_path, key, entry)
    _write_manifest(manifest_path, manifest)
    if conf["features"] and manifest["summary"]["ok"]:
        from geolink.recon.features import cache_point_features

        cache_point_features(out_dir, overwrite=overwrite)
    return manifest_path


def scene_key(model: Path, src_dir: Path) -> str:
    """``<loc>_group0/sparse/0`` below ``src_dir`` -> ``<loc>_group0`` (checked as a key)."""
    parts = list(model.relative_to(src_dir).parts)
    if parts and parts[-1].isdigit() and len(parts) >= 2 and parts[-2] == "sparse":
        parts = parts[:-2]
    elif parts and parts[-1] == "sparse":
        parts = parts[:-1]
    key = "/".join(parts) or src_dir.name
    _check_key(key)
    return key


def _import_model(
    model: Path, key: str, ply: str, conf: dict[str, Any], post: PostprocessConfig, out_dir: Path
) -> dict[str, Any]:
    """One scene's manifest entry: the model's points filtered, post-processed and written."""
    t0 = time.perf_counter()
    entry: dict[str, Any] = {
        "status": "failed",
        "reason": None,
        "backend": "colmap_import",
        "source": str(model),
        "ply": ply,
        # the released code's folders are <location>_group<i>: the location is the prefix
        "location": re.sub(r"_group\d+$", "", key),
    }
    cloud = read_colmap_points(model)  # DataError for corrupt files: a user error, stop
    cloud = filter_colmap_points(
        cloud, conf["import_min_track_length"], conf["import_max_reproj_error"]
    )
    try:
        _finish_cloud(cloud, post, out_dir, key, entry)
    except DegenerateCloudError as e:
        entry["reason"] = str(e)
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    return entry
