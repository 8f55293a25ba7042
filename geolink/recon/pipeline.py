"""``geolink reconstruct`` as an importable, resumable step.

``main(conf, dataset, out_dir)`` reconstructs one point cloud per scene (a location, or one of
``groups`` parts of it) and writes::

    out_dir/points/<scene>.ply     (num_points, 3) float32 in the unit ball (+ rgb when known)
    out_dir/manifest.json          per scene: status ok/failed (+ reason), counts, seconds
    out_dir/cameras/<scene>.json   registered camera centres by image (SfM backends only)
    out_dir/point_features.safetensors   Point-NN features of the ok scenes (conf["features"])

Scenes already ``ok`` in the manifest (with their PLY on disk) are skipped; failed ones are
retried only with ``retry_failed``. Scenes run in ``workers`` spawned processes; a failing scene
is recorded and never stops the others. Writes are atomic and the manifest is rewritten after
every scene, so an interrupted run loses at most the scenes in flight.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from tqdm import tqdm

from geolink.errors import ConfigError, DataError, GeoLinkError, MissingDependencyError
from geolink.recon.base import SceneFailed, build_backend
from geolink.recon.config import STEP, resolve
from geolink.recon.pointcloud import (
    DegenerateCloudError,
    PointCloud,
    PostprocessConfig,
    postprocess,
    write_ply,
)
from geolink.utils import conf as conf_mod
from geolink.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1


def scenes_of(dataset: Any, split: str = "train") -> dict[str, list[Path]]:
    """Scene key -> drone image paths, from a dataset (``.scenes(split)``) or a mapping."""
    if isinstance(dataset, Mapping):
        scenes = dataset
    elif hasattr(dataset, "scenes"):
        scenes = dataset.scenes(split=split)
    else:
        raise ConfigError(
            "reconstruction needs a dataset with .scenes(split) or a dict scene -> images"
        )
    return {str(k): [Path(p) for p in v] for k, v in sorted(scenes.items())}


def split_groups(
    scenes: Mapping[str, list[Path]], groups: int, mode: str = "contiguous"
) -> dict[str, list[Path]]:
    """Split each scene's images into ``groups`` scenes ``<key>_group<i>``.

    ``contiguous`` keeps consecutive images together (sorted by name; overlapping views on a
    drone orbit), ``interleave`` deals images round-robin. ``groups == 1`` returns the input.
    """
    if groups < 1:
        raise ConfigError(f"groups must be >= 1, got {groups}")
    if mode not in ("contiguous", "interleave"):
        raise ConfigError(f"group_mode must be 'contiguous' or 'interleave', got '{mode}'")
    if groups == 1:
        return dict(scenes)
    out = {}
    for key, images in scenes.items():
        images = sorted(images)
        k = min(groups, len(images))
        for i in range(k):
            if mode == "interleave":
                part = images[i::k]
            else:
                part = images[i * len(images) // k : (i + 1) * len(images) // k]
            out[f"{key}_group{i}"] = part
    return out


def _check_key(key: str) -> None:
    parts = Path(key).parts
    if not parts or Path(key).is_absolute() or any(p in ("..", ".") for p in parts):
        raise DataError(f"scene key '{key}' is not a safe relative path")


# ---------------------------------------------------------------------------- worker side
_BACKEND_CACHE: dict[str, Any] = {}


def _finish_cloud(
    cloud: PointCloud, post: PostprocessConfig, out_dir: Path, key: str, entry: dict[str, Any]
) -> dict[str, Any]:
    out, stats = postprocess(cloud, post)
    write_ply(out_dir / "points" / f"{key}.ply", out.xyz, out.rgb)
    if "camera_centers" in cloud.info:  # registered camera centres (SfM frame), for checks
        atomic_write_json(out_dir / "cameras" / f"{key}.json", cloud.info["camera_centers"])
    entry.update(stats)
    for k, v in cloud.info.items():
        if isinstance(v, (int, float, str, bool)):
            entry[k] = v
    entry["status"] = "ok"
    return entry


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _run_scene(task: dict[str, Any]) -> dict[str, Any]:
    """Reconstruct + post-process one scene; never raises for scene-level failures."""
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    key, out_dir = task["key"], Path(task["out_dir"])
    entry: dict[str, Any] = {
        "status": "failed",
        "reason": None,
        "backend": task["backend"],
        "images_used": len(task["images"]),
        "images_registered": 0,
    }
    cache_key = repr((task["backend"], sorted(task["backend_conf"].items())))
    if cache_key not in _BACKEND_CACHE:
        _BACKEND_CACHE[cache_key] = build_backend(task["backend"], task["backend_conf"])
    backend = _BACKEND_CACHE[cache_key]
    work = out_dir / "work" / key
    try:
        if work.exists():  # leftovers of an interrupted run
            shutil.rmtree(work)
        work.mkdir(parents=True)
        cloud = backend.reconstruct([Path(p) for p in task["images"]], work)
        _finish_cloud(cloud, PostprocessConfig(**task["post"]), out_dir, key, entry)
    except (MissingDependencyError, ConfigError):
        raise
    except (SceneFailed, DegenerateCloudError, GeoLinkError) as e:
        entry["reason"] = str(e)
    except Exception as e:  # any other failure of one scene must not stop the others
        logger.debug("scene %s failed", key, exc_info=True)
        entry["reason"] = f"{type(e).__name__}: {e}"
    finally:
        if not task["keep_work"]:
            shutil.rmtree(work, ignore_errors=True)
            for parent in work.parents:  # drop emptied scratch folders up to out_dir/work
                if parent == out_dir:
                    break
                try:
                    parent.rmdir()
                except OSError:  # not empty (another scene's scratch) or already gone
                    break
    if entry["status"] != "ok":  # never leave a stale cloud of an earlier run behind
        (out_dir / task["ply"]).unlink(missing_ok=True)
    entry["ply"] = task["ply"]
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    entry["cpu_seconds"] = round(_cpu_seconds() - cpu0, 3)  # all threads; load-independent
    return entry


# ---------------------------------------------------------------------------- main side
def _load_manifest(path: Path) -> dict[str, Any] | None:
    import json

    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("scenes"), dict):
            raise ValueError("expected an object with a 'scenes' object")
    except ValueError as e:
        raise DataError(f"{path}: corrupt manifest ({e}); delete it or use --overwrite") from None
    return manifest


def summarize(manifest: dict[str, Any]) -> dict[str, Any]:
    """Counts and timing over the manifest's scenes (also stored as manifest['summary'])."""
    scenes = manifest["scenes"].values()
    ok = [s for s in scenes if s.get("status") == "ok"]
    failed = [s for s in scenes if s.get("status") != "ok"]
    secs = [float(s.get("seconds", 0.0)) for s in scenes]
    return {
        "scenes": len(secs),
        "ok": len(ok),
        "failed": len(failed),
        "seconds_total": round(sum(secs), 2),
        "seconds_per_scene": round(sum(secs) / max(len(secs), 1), 3),
        "points_filtered_mean": round(
            sum(s.get("points_filtered", 0) for s in ok) / max(len(ok), 1), 1
        ),
        "padded": sum(bool(s.get("padded")) for s in ok),
    }


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    manifest["summary"] = summarize(manifest)
    atomic_write_json(path, manifest)


def _new_manifest(conf: dict[str, Any], post: PostprocessConfig) -> dict[str, Any]:
    return {
        "version": MANIFEST_VERSION,
        "backend": conf["backend"],
        "backend_conf": conf["backend_conf"],
        "postprocess": asdict(post),
        "split": conf["split"],
        "groups": conf["groups"],
        "scenes": {},
    }


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def main(
    conf: dict[str, Any] | None, dataset: Any, out_dir: str | Path, overwrite: bool = False
) -> Path:
    """Reconstruct every scene of ``dataset``; returns the path of ``manifest.json``.

    Args:
        conf: options (:class:`ReconConfig`: a mapping or ``key=value`` strings), strictly.
        dataset: object with ``scenes(split) -> {key: [image paths]}``, or such a mapping.
        out_dir: output folder (created).
        overwrite: redo every scene, ignoring the existing manifest and PLY files.
    """
    cfg = resolve(conf)
    conf = conf_mod.to_dict(cfg)
    post = PostprocessConfig(**{f.name: conf[f.name] for f in fields(PostprocessConfig)})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"

    scenes, locations = _scenes(dataset, conf)
    backend = build_backend(conf["backend"], conf["backend_conf"])  # validates options early
    backend.check()
    manifest = None if overwrite else _load_manifest(manifest_path)
    _check_resumable(manifest, manifest_path, conf, post)
    conf_mod.record(out_dir, cfg, STEP, overwrite)  # the resolved config, compared on resume
    manifest = manifest or _new_manifest(conf, post)

    todo = _todo(scenes, manifest, out_dir, conf)
    logger.info(
        "reconstruct: %d scenes, %d to do, %d already done (backend %s)",
        len(scenes),
        len(todo),
        len(scenes) - len(todo),
        conf["backend"],
    )

    workers, tasks = _tasks(conf, post, backend, todo, scenes, out_dir)
    _run_tasks(tasks, workers, manifest, manifest_path)
    for key in scenes:
        if key in manifest["scenes"]:
            manifest["scenes"][key]["location"] = locations[key]
    _write_manifest(manifest_path, manifest)
    s = manifest["summary"]
    logger.info("reconstruct: %d ok, %d failed of %d scenes", s["ok"], s["failed"], s["scenes"])

    if conf["features"] and s["ok"]:
        from geolink.recon.features import cache_point_features

        cache_point_features(out_dir, overwrite=overwrite)
    return manifest_path


def _tasks(
    conf: dict[str, Any], post: PostprocessConfig, backend: Any, todo: list[str],
    scenes: dict[str, list[Path]], out_dir: Path,
) -> tuple[int, list[dict[str, Any]]]:  # fmt: skip
    """The worker count (1 for backends that are not parallel-safe) and one task per scene."""
    workers = max(1, int(conf["workers"]))
    if workers > 1 and not backend.parallel_safe:
        logger.warning("backend '%s' runs in one process (workers=1)", conf["backend"])
        workers = 1
    backend_conf = dict(conf["backend_conf"])
    if "num_threads" in backend.default_conf and "num_threads" not in backend_conf:
        backend_conf["num_threads"] = _threads_per_worker(workers)
    return workers, [
        {
            "key": key,
            "images": [str(p) for p in scenes[key]],
            "out_dir": str(out_dir),
            "ply": f"points/{key}.ply",
            "backend": conf["backend"],
            "backend_conf": backend_conf,
            "post": asdict(post),
            "keep_work": conf["keep_work"],
        }
        for key in todo
    ]


def _scenes(dataset: Any, conf: dict[str, Any]) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """The scenes to build (scene key -> images) and scene key -> location."""
    scenes: dict[str, list[Path]] = {}
    locations: dict[str, str] = {}  # scene -> location, recorded in the manifest
    for loc, images in scenes_of(dataset, conf["split"]).items():
        for key, part in split_groups({loc: images}, conf["groups"], conf["group_mode"]).items():
            scenes[key], locations[key] = part, loc
    if conf["scenes"] is not None:
        wanted = set(conf["scenes"])
        scenes = {k: v for k, v in scenes.items() if k in wanted}
    if not scenes:
        raise DataError(f"no scenes to reconstruct in split '{conf['split']}'")
    for key in scenes:
        _check_key(key)
    return scenes, locations


def _check_resumable(manifest: dict | None, manifest_path: Path, conf: dict, post) -> None:
    """Refuse to resume into a manifest made with another backend or post-processing."""
    if manifest is None:
        return
    if manifest.get("backend") != conf["backend"]:
        raise ConfigError(
            f"{manifest_path} was made with backend '{manifest.get('backend')}', not "
            f"'{conf['backend']}'; use another output folder or --overwrite"
        )
    if manifest.get("postprocess") != asdict(post):
        raise ConfigError(
            f"{manifest_path} was made with other post-processing settings "
            f"({manifest.get('postprocess')}); use another output folder or --overwrite"
        )


def _todo(scenes: dict[str, list[Path]], manifest: dict, out_dir: Path, conf: dict) -> list[str]:
    """Scenes still to reconstruct; a scene without images is recorded as failed here."""
    todo = []
    for key, images in scenes.items():
        ply = f"points/{key}.ply"
        old = manifest["scenes"].get(key)
        if old is not None and old.get("status") == "ok" and (out_dir / ply).is_file():
            continue
        if old is not None and old.get("status") != "ok" and not conf["retry_failed"]:
            continue
        if not images:
            manifest["scenes"][key] = {
                "status": "failed",
                "reason": "no images",
                "backend": conf["backend"],
                "ply": ply,
                "seconds": 0.0,
            }
            continue
        todo.append(key)
    return todo


def _record(manifest: dict, manifest_path: Path, key: str, entry: dict[str, Any]) -> None:
    manifest["scenes"][key] = entry
    if entry["status"] != "ok":
        logger.warning("scene %s failed: %s", key, entry["reason"])
    _write_manifest(manifest_path, manifest)


def _run_tasks(tasks: list[dict], workers: int, manifest: dict, manifest_path: Path) -> None:
    bar = tqdm(total=len(tasks), desc="reconstruct", unit="scene")
    try:
        if workers == 1:
            for task in tasks:
                _record(manifest, manifest_path, task["key"], _run_scene(task))
                bar.update()
            return
        import multiprocessing as mp

        from geolink.utils.process import die_with_parent

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=die_with_parent) as pool:
            futures = {pool.submit(_run_scene, t): t for t in tasks}
            for fut in as_completed(futures):
                task = futures[fut]
                try:
                    entry = fut.result()
                except (MissingDependencyError, ConfigError):
                    for f in futures:
                        f.cancel()
                    raise
                except BrokenProcessPool as e:
                    entry = {
                        "status": "failed",
                        "reason": f"worker process died ({e})",
                        "backend": task["backend"],
                        "ply": task["ply"],
                        "seconds": 0.0,
                    }
                _record(manifest, manifest_path, task["key"], entry)
                bar.update()
    finally:
        bar.close()
