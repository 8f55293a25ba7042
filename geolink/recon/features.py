"""Point-NN features of the reconstructed clouds, computed once and cached for training.

Point-NN has no learned weights, so its output per cloud is fixed by its settings (``stages``,
``embed_dim``, ``k``, ``alpha``, ``beta``, ``lga_std``): it is computed here from
``points/<scene>.ply`` of the ok scenes in ``manifest.json`` and stored in a safetensors file
(tensor name = scene key, value float32 (D,)). The default settings go to
``point_features.safetensors``, any other to ``point_features_<hash>.safetensors`` beside it, so
runs with different settings each find theirs. The file's metadata records the settings, the
number of points per cloud and each scene's location (a location reconstructed as several
groups has several scenes). This module is the one owner of those features: the trainer asks
:func:`features_for_training` for the settings of its config.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from geolink.errors import DataError
from geolink.recon.pointcloud import read_ply
from geolink.utils.io import atomic_path, inside

logger = logging.getLogger(__name__)

FEATURES_FILE = "point_features.safetensors"
FEATURES_FORMAT = "geolink-point-features-v2"
# Point-NN's constructor arguments under their config names (model.point.<name>)
SETTINGS = {
    "stages": "num_stages",
    "embed_dim": "embed_dim",
    "k": "k",
    "alpha": "alpha",
    "beta": "beta",
    "lga_std": "lga_std",
}


def default_settings() -> dict:
    """The settings of ``PointNN()``; files written before the settings were recorded used them."""
    import inspect

    from geolink.models.point_nn import PointNN

    params = inspect.signature(PointNN).parameters
    return {name: params[arg].default for name, arg in SETTINGS.items()}


def settings_of(point_cfg) -> dict:
    """Point-NN settings of a ``model.point`` config (or any object with those attributes)."""
    return {name: getattr(point_cfg, name) for name in SETTINGS}


def _normalise(settings: dict | None) -> dict:
    base = default_settings()
    if settings:
        unknown = sorted(set(settings) - set(base))
        if unknown:
            raise ValueError(f"unknown Point-NN settings {unknown}; expected {sorted(base)}")
        base.update(settings)
    return {k: (float(v) if isinstance(base[k], float) else v) for k, v in base.items()}


def features_path(recon_dir: str | Path, settings: dict | None = None) -> Path:
    """Where the features of ``settings`` live in ``recon_dir``."""
    settings = _normalise(settings)
    if settings == _normalise(None):
        return Path(recon_dir) / FEATURES_FILE
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return Path(recon_dir) / f"point_features_{digest}.safetensors"


def feature_metadata(settings: dict | None, num_points: int | None, locations: dict) -> dict:
    """The safetensors metadata (all strings) describing a features file."""
    meta = {
        "format": FEATURES_FORMAT,
        "encoder": "point_nn",
        "settings": json.dumps(_normalise(settings), sort_keys=True),
        "locations": json.dumps(dict(sorted(locations.items()))),
        "scenes": str(len(locations)),
    }
    if num_points is not None:
        meta["num_points"] = str(int(num_points))
    return meta


def read_feature_metadata(path: str | Path) -> dict:
    """``{"settings": dict, "num_points": int | None, "locations": dict | None}`` of a file.

    A file without recorded settings (written before they were recorded) was made by the
    default ``PointNN()``: it reads as the default settings.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{path}: corrupt point-feature file ({e}); delete it and rerun") from None
    try:
        settings = json.loads(meta["settings"]) if "settings" in meta else None
        locations = json.loads(meta["locations"]) if "locations" in meta else None
        num_points = int(meta["num_points"]) if "num_points" in meta else None
        if locations is not None and not isinstance(locations, dict):
            raise ValueError("locations is not a mapping")
        settings = _normalise(settings)
    except (ValueError, TypeError) as e:
        raise DataError(f"{path}: unreadable point-feature metadata ({e})") from None
    return {"settings": settings, "num_points": num_points, "locations": locations}


def load_point_features(path: str | Path) -> dict[str, Tensor]:
    """Read cached features: scene key -> float32 (D,) tensor.

    Raises:
        DataError: the file is missing or not a readable safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / FEATURES_FILE
    if not path.is_file():
        raise DataError(
            f"{path}: point features not found; run `geolink reconstruct` (features are cached "
            "at its end) on this folder first"
        )
    try:
        feats = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{path}: corrupt point-feature file ({e}); delete it and rerun") from None
    for key, value in feats.items():
        if not value.is_floating_point():
            raise DataError(f"{path}: feature '{key}' has dtype {value.dtype}, expected float")
        if value.ndim != 1 or not torch.isfinite(value).all():
            raise DataError(f"{path}: feature '{key}' is not a finite 1-D vector")
    return {key: value.float() for key, value in feats.items()}


def _ok_scenes(recon_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """(scene -> cloud file, scene -> location) of the manifest's ok scenes. A manifest entry
    without ``location`` (written before it was recorded) is its own location."""
    manifest_path = recon_dir / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path}: not found; is {recon_dir} a reconstruction folder?")
    try:
        scenes = json.loads(manifest_path.read_text())["scenes"]
        if not isinstance(scenes, dict) or not all(isinstance(v, dict) for v in scenes.values()):
            raise ValueError("'scenes' must map scene keys to objects")
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{manifest_path}: corrupt manifest ({e})") from None
    ok = {key: s for key, s in sorted(scenes.items()) if s.get("status") == "ok"}
    files = {
        key: inside(recon_dir, s.get("ply", f"points/{key}.ply"), f"{manifest_path} scene {key}")
        for key, s in ok.items()
    }
    return files, {key: str(s.get("location", key)) for key, s in ok.items()}


def cache_point_features(
    recon_dir: str | Path,
    overwrite: bool = False,
    batch_size: int | None = None,
    settings: dict | None = None,
) -> Path:
    """Compute Point-NN features (with ``settings``, default ``PointNN()``) for every ok scene of
    ``recon_dir`` not cached yet.

    One cloud at a time by default: Point-NN's per-stage temporaries (B x M x k x C) are then
    small enough to be reused instead of freshly mapped, 2.8x faster on 2 cores with identical
    features (``lga_std=cloud`` makes each cloud's descriptor independent of its batch). With
    ``lga_std=batch`` (one std over the batch, the original Point-NN) the batch is part of the
    result: batches of 16 clouds in sorted scene order unless ``batch_size`` says otherwise.

    Returns:
        Path of the features file (:func:`features_path`).
    """
    from safetensors.torch import save_file

    from geolink.models.point_nn import PointNN, encode_point_clouds

    recon_dir = Path(recon_dir)
    settings = _normalise(settings)
    if batch_size is None:
        batch_size = 16 if settings["lga_std"] == "batch" else 1
    out = features_path(recon_dir, settings)
    scenes, locations = _ok_scenes(recon_dir)
    feats: dict[str, Tensor] = {}
    num_points = None
    if out.is_file() and not overwrite:
        try:
            meta = read_feature_metadata(out)
            if meta["settings"] != settings:
                raise DataError(f"{out}: made with other Point-NN settings {meta['settings']}")
            num_points = meta["num_points"]
            feats = {k: v for k, v in load_point_features(out).items() if k in scenes}
        except DataError as e:
            logger.warning("%s; recomputing all point features", e)
            feats, num_points = {}, None
    todo = [k for k in scenes if k not in feats]
    if not todo and out.is_file() and not overwrite and len(feats) == len(scenes):
        return out
    if todo:
        points = _read_clouds([scenes[k] for k in todo], num_points, out)
        num_points = points.shape[1]
        logger.info("Point-NN features for %d clouds of %d points", len(todo), num_points)
        encoder = PointNN(**{arg: settings[name] for name, arg in SETTINGS.items()})
        emb = encode_point_clouds(points, batch_size=batch_size, encoder=encoder)
        for key, vec in zip(todo, emb.float(), strict=True):
            feats[key] = vec.contiguous().clone()
    meta = feature_metadata(settings, num_points, {k: locations[k] for k in feats})
    with atomic_path(out) as tmp:
        save_file({k: feats[k] for k in sorted(feats)}, str(tmp), metadata=meta)
    return out


def _read_clouds(paths: list[Path], num_points: int | None, out: Path) -> Tensor:
    """(N, P, 3) of the PLY files; clouds of unequal size, or of another size than the
    ``num_points`` already cached in ``out``, are a DataError naming the file."""
    clouds = []
    for path in paths:
        xyz = read_ply(path).xyz
        if clouds and xyz.shape != clouds[0].shape:
            raise DataError(f"{path}: {len(xyz)} points, expected {len(clouds[0])} like the others")
        clouds.append(xyz)
    if num_points is not None and len(clouds[0]) != num_points:
        raise DataError(
            f"{paths[0]}: {len(clouds[0])} points, but {out} holds features of "
            f"{num_points}-point clouds; rerun with overwrite"
        )
    return torch.from_numpy(np.stack(clouds))


def _settings_diff(cached: dict, wanted: dict, label: str) -> str:
    """``model.point.k=16 (cached: 90), ...`` for every setting that differs."""
    return ", ".join(
        f"model.point.{k}={wanted[k]!r} ({label}: {cached[k]!r})"
        for k in wanted
        if cached[k] != wanted[k]
    )


def _feature_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("point_features*.safetensors"))


def features_for_training(
    points: str | Path, settings: dict, num_points: int
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The cached features of ``settings`` in the reconstruction folder ``points`` (computed
    and cached there when missing) and each scene's location.

    Raises:
        ConfigError: the folder holds no clouds to compute them from (only a features file made
            with other settings; the differing keys are named), or its clouds have another
            number of points than ``num_points``.
        DataError: missing or corrupt files, features of the wrong size.
    """
    from geolink.errors import ConfigError

    points = Path(points)
    folder = points.parent if points.is_file() else points
    settings = _normalise(settings)
    path = points if points.is_file() else features_path(folder, settings)
    meta = read_feature_metadata(path) if path.is_file() else None
    if meta is not None and meta["settings"] != settings:  # an explicitly named file
        raise ConfigError(
            f"{path} holds Point-NN features made with other settings: "
            + _settings_diff(meta["settings"], settings, "file")
            + f"; pass the reconstruction folder ({folder}) so they are recomputed"
        )
    if not path.is_file():
        if not (folder / "manifest.json").is_file():
            others = [read_feature_metadata(f)["settings"] for f in _feature_files(folder)]
            if others:
                old = min(others, key=lambda o: sum(o[k] != settings[k] for k in settings))
                raise ConfigError(
                    f"{folder} holds Point-NN features made with other settings ("
                    + _settings_diff(old, settings, "cached")
                    + ") and no manifest.json/clouds to recompute them from; use the settings "
                    "of the cache or the reconstruction folder"
                )
            raise DataError(
                f"{path}: point features not found; run `geolink reconstruct` (features are "
                "cached at its end) on this folder first"
            )
        logger.info("Point-NN features with settings %s: computing them into %s", settings, path)
        cache_point_features(folder, settings=settings)
        meta = read_feature_metadata(path)
    if meta["num_points"] is not None and meta["num_points"] != num_points:
        raise ConfigError(
            f"{path}: the clouds have {meta['num_points']} points but model.point.num_points="
            f"{num_points}; set model.point.num_points={meta['num_points']} or rerun "
            f"`geolink reconstruct --num-points {num_points}` into another folder"
        )
    feats = load_point_features(path)
    dim = settings["embed_dim"] * 2 ** settings["stages"]
    for key, value in feats.items():
        if value.shape != (dim,):
            raise DataError(
                f"{path}: feature '{key}' has shape {tuple(value.shape)}, expected ({dim},) for "
                f"stages={settings['stages']}, embed_dim={settings['embed_dim']}"
            )
    locations = meta["locations"] or {}
    return feats, {key: str(locations.get(key, key)) for key in feats}
