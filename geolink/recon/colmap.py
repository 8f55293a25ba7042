"""``colmap`` backend: pycolmap SIFT + matching + incremental mapping on the CPU.

The output is the sparse SfM point cloud (the released GeoLink code trains on COLMAP
``points3D.txt``), filtered by track length and reprojection error. When the mapper produces
several models, the one with the most registered images (then the most points) is used. Dense
MVS is not used: pycolmap's ``patch_match_stereo`` needs CUDA.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from geolink.errors import DataError, MissingDependencyError
from geolink.recon.base import ReconBackend, SceneFailed
from geolink.recon.pointcloud import PointCloud, filter_colmap_points

logger = logging.getLogger(__name__)


def _import_pycolmap():
    try:
        import pycolmap
    except ImportError:
        raise MissingDependencyError(
            "the colmap backend needs pycolmap: pip install pycolmap"
        ) from None
    return pycolmap


def _link_images(images: list[Path], image_dir: Path) -> dict[str, Path]:
    """Put the scene's images in one folder under unique names; returns name -> original."""
    if image_dir.exists():  # stale links from an interrupted run
        shutil.rmtree(image_dir)
    image_dir.mkdir(parents=True)
    names = {}
    for i, src in enumerate(images):
        src = Path(src).resolve()
        if not src.is_file():
            raise DataError(f"{src}: image not found")
        name = f"{i:04d}_{src.name}"
        dst = image_dir / name
        try:
            os.symlink(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        names[name] = src
    return names


def largest_model(models: dict[int, Any]) -> Any | None:
    """The reconstruction with the most registered images, ties broken by more 3D points."""
    if not models:
        return None
    return max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))


def reconstruction_to_cloud(rec: Any) -> PointCloud:
    """Sparse points of a ``pycolmap.Reconstruction`` with error and track length in ``info``."""
    items = list(rec.points3D.values())
    xyz = np.array([p.xyz for p in items], np.float64).reshape(-1, 3)
    rgb = np.array([p.color for p in items], np.uint8).reshape(-1, 3)
    err = np.array([p.error for p in items], np.float32)
    track = np.array([p.track.length() for p in items], np.int64)
    return PointCloud(xyz, rgb, info={"error": err, "track_length": track})


class ColmapBackend(ReconBackend):
    """SIFT features, exhaustive (small scenes) or sequential matching, incremental SfM."""

    name = "colmap"
    default_conf: dict[str, Any] = {
        "camera_model": "SIMPLE_RADIAL",
        "camera_params": "",  # e.g. "f,cx,cy" for known intrinsics (PINHOLE: "fx,fy,cx,cy")
        "single_camera": True,  # all drone images of a scene share one camera
        "max_image_size": 1024,
        "max_num_features": 4096,
        "peak_threshold": 0.0067,  # SIFT DoG threshold; lower -> more features on small images
        "domain_size_pooling": False,  # DSP-SIFT: more robust to viewpoint change, slower
        "matcher": "auto",  # auto | exhaustive | sequential
        "exhaustive_max_images": 60,  # auto: exhaustive up to this many images
        "sequential_overlap": 10,
        "min_num_matches": 15,
        # Mapper thresholds relaxed from COLMAP's defaults (100, 16 deg, 30): small drone images
        # on sparse orbits give 15-60 inlier matches per pair (measured on the synthetic demo).
        "init_min_num_inliers": 15,
        "init_min_tri_angle": 8.0,
        "abs_pose_min_num_inliers": 12,
        "guided_matching": True,  # ~3x more verified matches and 3D points on such images
        "min_model_size": 3,
        "ba_global_max_num_iterations": 30,
        "ba_local_max_num_iterations": 15,
        "refine_focal_length": True,
        "max_runtime_seconds": -1,
        "num_threads": -1,
        "seed": 0,
        "min_registered": 3,  # fewer registered images -> scene failed
        "min_track_length": 2,
        "max_reproj_error": 2.0,
        "keep_model": False,
        "log_level": 2,  # glog: 0 info, 1 warning, 2 error  # write the chosen model as text into work_dir/model
    }

    def check(self) -> None:
        _import_pycolmap()

    def _options(self, pycolmap: Any) -> tuple[Any, Any, Any, Any]:
        c = self.conf
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = c["camera_model"]
        reader.camera_params = c["camera_params"]
        extract = pycolmap.FeatureExtractionOptions()
        extract.max_image_size = int(c["max_image_size"])
        extract.num_threads = int(c["num_threads"])
        extract.sift.max_num_features = int(c["max_num_features"])
        extract.sift.peak_threshold = float(c["peak_threshold"])
        extract.sift.domain_size_pooling = bool(c["domain_size_pooling"])
        match = pycolmap.FeatureMatchingOptions()
        match.num_threads = int(c["num_threads"])
        match.guided_matching = bool(c["guided_matching"])
        mapper = pycolmap.IncrementalPipelineOptions()
        mapper.min_model_size = int(c["min_model_size"])
        mapper.min_num_matches = int(c["min_num_matches"])
        mapper.num_threads = int(c["num_threads"])
        mapper.random_seed = int(c["seed"])
        mapper.mapper.random_seed = int(c["seed"])
        mapper.triangulation.random_seed = int(c["seed"])
        mapper.mapper.init_min_num_inliers = int(c["init_min_num_inliers"])
        mapper.mapper.init_min_tri_angle = float(c["init_min_tri_angle"])
        mapper.mapper.abs_pose_min_num_inliers = int(c["abs_pose_min_num_inliers"])
        mapper.mapper.num_threads = int(c["num_threads"])
        mapper.ba_global_max_num_iterations = int(c["ba_global_max_num_iterations"])
        mapper.ba_local_max_num_iterations = int(c["ba_local_max_num_iterations"])
        mapper.ba_refine_focal_length = bool(c["refine_focal_length"])
        mapper.mapper.abs_pose_refine_focal_length = bool(c["refine_focal_length"])
        mapper.max_runtime_seconds = int(c["max_runtime_seconds"])
        mapper.extract_colors = True
        return reader, extract, match, mapper

    def run_sfm(self, images: list[Path], work_dir: Path) -> tuple[Any, dict[str, Path], dict]:
        """Run SfM; returns (largest pycolmap.Reconstruction or None, name -> image, timings)."""
        pycolmap = _import_pycolmap()
        pycolmap.logging.minloglevel = int(self.conf["log_level"])
        work_dir = Path(work_dir)
        image_dir, db = work_dir / "images", work_dir / "database.db"
        if db.exists():
            db.unlink()
        names = _link_images(images, image_dir)
        reader, extract, match, mapper = self._options(pycolmap)
        mode = (
            pycolmap.CameraMode.SINGLE if self.conf["single_camera"] else pycolmap.CameraMode.AUTO
        )
        device = pycolmap.Device.cpu
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        pycolmap.extract_features(
            db,
            image_dir,
            image_names=sorted(names),
            camera_mode=mode,
            reader_options=reader,
            extraction_options=extract,
            device=device,
        )
        times["extract_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        matcher = self.conf["matcher"]
        if matcher == "auto":
            exhaustive = len(names) <= self.conf["exhaustive_max_images"]
            matcher = "exhaustive" if exhaustive else "sequential"
        if matcher == "exhaustive":
            pycolmap.match_exhaustive(db, matching_options=match, device=device)
        elif matcher == "sequential":
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = int(self.conf["sequential_overlap"])
            pycolmap.match_sequential(
                db, matching_options=match, pairing_options=pairing, device=device
            )
        else:
            raise DataError(f"colmap matcher '{matcher}': expected auto, exhaustive or sequential")
        times["match_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sparse = work_dir / "sparse"
        sparse.mkdir(parents=True, exist_ok=True)
        models = pycolmap.incremental_mapping(db, image_dir, sparse, options=mapper)
        times["map_s"] = time.perf_counter() - t0
        return largest_model(models), names, times

    def reconstruct(self, images: list[Path], work_dir: Path) -> PointCloud:
        rec, names, times = self.run_sfm(images, work_dir)
        n_reg = 0 if rec is None else rec.num_reg_images()
        if n_reg < self.conf["min_registered"]:
            raise SceneFailed(
                f"only {n_reg} of {len(images)} images registered "
                f"(min_registered={self.conf['min_registered']})"
            )
        raw = reconstruction_to_cloud(rec)
        cloud = filter_colmap_points(
            raw, self.conf["min_track_length"], self.conf["max_reproj_error"]
        )
        centers = {
            str(names[im.name]): [float(v) for v in im.projection_center()]
            for im in rec.images.values()
            if im.has_pose
        }
        if self.conf["keep_model"]:
            (Path(work_dir) / "model").mkdir(exist_ok=True)
            rec.write_text(Path(work_dir) / "model")
        cloud.info = {
            "images_used": len(images),
            "images_registered": n_reg,
            "sfm_points": len(raw),
            "mean_track_length": float(rec.compute_mean_track_length()),
            "mean_reproj_error": float(rec.compute_mean_reprojection_error()),
            "camera_centers": centers,
            **{k: round(v, 3) for k, v in times.items()},
        }
        return cloud
