"""Synthetic benchmark: layout on disk, determinism, geometry of depth + cameras, SIFT sanity."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from geolink.data.synthetic import cameras as C
from geolink.data.synthetic.presets import resolve_params
from geolink.errors import ConfigError, DataError

# A one-region, two-location world with 3 small views: fast enough to generate several times.
SMALL = {
    "regions": ("suburb",),
    "train_locations": 1,
    "test_locations": 1,
    "drone_size": 96,
    "satellite_size": 96,
    "ground_px": 512,
    "rings": ((150.0, 135.0, 3),),
    "shadow_size": 1024,
}


def _meta(root: Path) -> dict:
    return json.loads((root / "synth.json").read_text())


def _cam(root: Path, region: str, loc: str) -> dict:
    return json.loads((root / region / "cameras" / f"{loc}.json").read_text())


def _scene(root: Path, region: str, loc: str):
    """Rebuild a location's scene (deterministic) to get its analytic height field."""
    from geolink.data.synthetic import world
    from geolink.data.synthetic.styles import get_style

    meta = _meta(root)
    params = resolve_params(meta["preset"], **meta["params"])
    r = meta["regions"].index(region)
    return world.build_scene(get_style(region), params, meta["seed"], r, int(loc))


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".jpg", ".npy", ".json", ".csv")
    }


# ------------------------------------------------------------------ pure functions (no GL)


def test_intrinsics_and_look_at_project_target_to_centre():
    K = C.intrinsics(200, 100, 90.0)
    # hfov 90 deg: f = W / (2 tan 45) = 100
    assert np.allclose(K, [[100, 0, 100], [0, 100, 50], [0, 0, 1]])
    eye, target = np.array([30.0, -40.0, 50.0]), np.array([0.0, 0.0, 10.0])
    T = C.look_at(eye, target)
    R = T[:3, :3]
    assert np.allclose(R.T @ R, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
    Xc = np.linalg.inv(T) @ np.r_[target, 1.0]
    assert np.allclose(Xc[:2], 0) and np.isclose(Xc[2], np.linalg.norm(eye - target))
    # OpenCV axes: image "down" (camera +y) points downwards in the world for a tilted camera
    assert R[2, 1] < 0


def test_satellite_pose_is_north_up_nadir():
    T = C.satellite_pose(np.array([5.0, 7.0, 0.0]), 1000.0)
    # camera x = east, camera y (image down) = south, camera z (forward) = down
    assert np.allclose(T[:3, 0], [1, 0, 0]) and np.allclose(T[:3, 1], [0, -1, 0])
    assert np.allclose(T[:3, 2], [0, 0, -1]) and np.allclose(T[:3, 3], [5, 7, 1000])


def test_geodetic_conversion_hand_computed():
    origin = (0.0, 10.0)
    lat, lon = C.enu_to_latlon(np.array(0.0), np.array(1000.0), origin)
    # 1 km north on the equator: 1000 / 6378137 rad
    assert np.isclose(lat, np.rad2deg(1000 / 6378137.0)) and np.isclose(lon, 10.0)
    origin = (60.0, 0.0)  # cos(60 deg) = 0.5: 1 km east is twice the longitude change
    lat, lon = C.enu_to_latlon(np.array(1000.0), np.array(0.0), origin)
    assert np.isclose(lon, np.rad2deg(2000 / 6378137.0)) and np.isclose(lat, 60.0)
    x, y = C.latlon_to_enu(lat, lon, origin)
    assert np.allclose([x, y], [1000.0, 0.0])


def test_params_are_strict():
    with pytest.raises(ConfigError, match="drone_sizee"):
        resolve_params("tiny", drone_sizee=10)
    with pytest.raises(ConfigError, match="available: bench, demo, tiny"):
        resolve_params("huge")
    with pytest.raises(ConfigError, match="drone_mode"):
        resolve_params("tiny", drone_mode="spiral")
    with pytest.raises(ConfigError, match="available: campus, campus_autumn, downtown, suburb"):
        resolve_params("tiny", regions=("campus", "forest"))
    p = resolve_params("tiny", drone_mode="fixed_heights", heights=[150, 300], views_per_height=5)
    assert p.drone_rings() == [(150, 90.0, 5), (300, 180.0, 5)]


def test_numbered_regions_reuse_a_style_at_another_origin():
    from geolink.data.synthetic.styles import get_style

    a, b = get_style("suburb"), get_style("suburb_3")
    assert b.name == "suburb" and b.roof_tiles == a.roof_tiles
    assert np.allclose(np.subtract(b.origin_latlon, a.origin_latlon), (0.5, 0.5))


def test_no_gl_error_names_system_packages(monkeypatch):
    import moderngl

    from geolink.data.synthetic.render import GLUnavailableError, create_context

    def boom(**kw):
        raise Exception("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(moderngl, "create_standalone_context", boom)
    with pytest.raises(GLUnavailableError, match="libegl1 libegl-mesa0 libgl1-mesa-dri"):
        create_context()


def test_no_gl_in_the_render_worker_is_a_clear_error(tmp_path: Path, monkeypatch):
    """Rendering runs in a child process; its GL failure reaches the caller as the same error."""
    from geolink.data.synthetic import GLUnavailableError, generate

    # glvnd finds no EGL vendor library -> no EGL device, as on a machine without Mesa
    monkeypatch.setenv("__EGL_VENDOR_LIBRARY_FILENAMES", str(tmp_path / "none.json"))
    with pytest.raises(GLUnavailableError, match="apt-get install -y libegl1"):
        generate(tmp_path / "out", "tiny", **SMALL)
    assert not (tmp_path / "out" / "suburb" / "cameras").exists()


# ------------------------------------------------------------------ the tiny preset on disk


@pytest.mark.gl
def test_tiny_writes_university1652_layout(synth_tiny: Path):
    meta = _meta(synth_tiny)
    assert set(meta) == {"generator_version", "seed", "preset", "params", "regions"}
    assert meta["preset"] == "tiny" and len(meta["regions"]) >= 3
    p = resolve_params("tiny")
    n_views = sum(r[2] for r in p.rings)
    for region in meta["regions"]:
        root = synth_tiny / region
        train = sorted(d.name for d in (root / "train" / "drone").iterdir())
        test = sorted(d.name for d in (root / "test" / "query_drone").iterdir())
        assert len(train) == p.train_locations and len(test) == p.test_locations
        assert not set(train) & set(test)
        assert all(len(x) == 4 and x.isdigit() for x in train + test)
        for loc in train:
            assert (root / "train" / "satellite" / loc / f"{loc}.jpg").is_file()
            imgs = sorted((root / "train" / "drone" / loc).glob("image-*.jpg"))
            assert [i.name for i in imgs][:2] == ["image-01.jpg", "image-02.jpg"]
            assert len(imgs) == n_views
        for loc in test:
            for sub in ("query_satellite", "gallery_satellite"):
                assert (root / "test" / sub / loc / f"{loc}.jpg").is_file()
            q = sorted((root / "test" / "query_drone" / loc).glob("*.jpg"))
            g = sorted((root / "test" / "gallery_drone" / loc).glob("*.jpg"))
            assert [x.name for x in q] == [x.name for x in g]
            assert q[0].read_bytes() == g[0].read_bytes()
        rows = (root / "gps.csv").read_text().splitlines()
        assert rows[0] == "name,lat,lon" and len(rows) == 1 + len(train) + len(test)
        rmeta = json.loads((root / "synth.json").read_text())
        assert rmeta["region"] == region and len(rmeta["origin_latlon"]) == 2
        for loc in train + test:
            cam = _cam(synth_tiny, region, loc)
            assert cam["split"] == ("train" if loc in train else "test")
            assert len(cam["drone"]) == n_views
            for v in cam["drone"] + [cam["satellite"]]:
                img = cv2.imread(str(root / v["image"]))
                depth = np.load(root / v["depth"])
                assert img.shape == (v["height"], v["width"], 3)
                assert depth.dtype == np.float32 and depth.shape == img.shape[:2]
                assert np.isfinite(depth).all() and (depth >= 0).all()
                assert np.asarray(v["world_from_camera"]).shape == (4, 4)


@pytest.mark.gl
def test_satellite_centre_and_latlon_match_the_location(synth_tiny: Path):
    from geolink.data.synthetic.styles import get_style

    for region in _meta(synth_tiny)["regions"]:
        rmeta = json.loads((synth_tiny / region / "synth.json").read_text())
        gps = {
            row.split(",")[0]: tuple(map(float, row.split(",")[1:]))
            for row in (synth_tiny / region / "gps.csv").read_text().splitlines()[1:]
        }
        origin = tuple(get_style(region).origin_latlon)
        assert tuple(rmeta["origin_latlon"]) == origin
        for info in rmeta["locations"]:
            cam = _cam(synth_tiny, region, info["id"])
            sat = cam["satellite"]
            T = np.asarray(sat["world_from_camera"])
            assert np.allclose(T[:2, 3], info["xy"]) and np.allclose(
                sat["center_xyz"][:2], info["xy"]
            )
            # the tile's centre pixel looks straight down at the location
            assert np.allclose(T[:3, 2], [0, 0, -1])
            lat, lon = C.enu_to_latlon(np.array(info["xy"][0]), np.array(info["xy"][1]), origin)
            assert np.isclose(cam["lat"], lat) and np.isclose(cam["lon"], lon)
            assert np.allclose(gps[info["id"]], (lat, lon), atol=1e-7)
            # drone cameras orbit the location and look towards it
            for v in cam["drone"]:
                Tv = np.asarray(v["world_from_camera"])
                d = Tv[:2, 3] - info["xy"]
                assert np.isclose(np.linalg.norm(d), v["radius"], rtol=1e-6)
                assert np.isclose(Tv[2, 3], v["altitude"])
                assert np.dot(Tv[:2, 2], -d) > 0


@pytest.mark.gl
def test_depth_backprojects_onto_scene_geometry(synth_tiny: Path):
    for region in _meta(synth_tiny)["regions"]:
        cam = _cam(synth_tiny, region, "0000")
        scene = _scene(synth_tiny, region, "0000")
        off = np.asarray(cam["satellite"]["center_xyz"])
        # satellite: z = camera height - depth must be the analytic top surface
        sat = cam["satellite"]
        d = np.load(synth_tiny / region / sat["depth"])
        T = np.asarray(sat["world_from_camera"])
        h, w = d.shape
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        m = sat["m_per_px"]
        Xc = np.stack([(u - w / 2) * m, (v - h / 2) * m, d], -1)
        P = Xc @ T[:3, :3].T + T[:3, 3] - off
        ok = np.abs(P[..., 2] - scene.height_at(P[..., 0], P[..., 1])) < 0.3
        assert ok.mean() > 0.9, (region, ok.mean())
        # drone: most points lie on the top surface; none floats above the scene
        view = cam["drone"][0]
        d = np.load(synth_tiny / region / view["depth"])
        assert (d > 0).mean() > 0.9
        P = C.backproject(d, np.asarray(view["K"]), np.asarray(view["world_from_camera"]))
        P = P[d > 0][::7] - off  # a subsample keeps the analytic height field cheap
        on_top = np.abs(P[:, 2] - scene.height_at(P[:, 0], P[:, 1])) < 0.3
        assert on_top.mean() > 0.6, (region, on_top.mean())
        near = [(dx, dy) for dx in (-0.5, 0, 0.5) for dy in (-0.5, 0, 0.5)]
        hmax = np.max([scene.height_at(P[:, 0] + dx, P[:, 1] + dy) for dx, dy in near], 0)
        above = P[:, 2] > hmax + 0.5
        assert above.mean() < 0.05, (region, above.mean())


@pytest.mark.gl
def test_depth_is_consistent_between_drone_views(synth_tiny: Path):
    for region in _meta(synth_tiny)["regions"]:
        cam = _cam(synth_tiny, region, "0000")
        a, b = cam["drone"][0], cam["drone"][resolve_params("tiny").rings[0][2]]  # 45 deg apart
        da = np.load(synth_tiny / region / a["depth"])
        db = np.load(synth_tiny / region / b["depth"])
        P = C.backproject(da, np.asarray(a["K"]), np.asarray(a["world_from_camera"]))[da > 0]
        Tb = np.linalg.inv(np.asarray(b["world_from_camera"]))
        X = P @ Tb[:3, :3].T + Tb[:3, 3]
        K = np.asarray(b["K"])
        uv = X[:, :2] / X[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
        h, w = db.shape
        inside = (X[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        assert inside.mean() > 0.3
        zb = db[uv[inside, 1].astype(int), uv[inside, 0].astype(int)]
        rel = (zb - X[inside, 2]) / X[inside, 2]
        # seen by both views -> same depth; occluded in b -> something nearer (rel < 0);
        # b never sees *through* a surface that a saw (rel > 0), up to pixel sampling at edges
        same = np.abs(rel) < 0.01
        assert same.mean() > 0.5 and np.median(np.abs(rel[same])) < 0.003, (region, same.mean())
        assert (rel > 0.01).mean() < 0.05, (region, (rel > 0.01).mean())


@pytest.mark.gl
def test_sift_matches_neighbouring_drone_views(synth_tiny: Path):
    """Geometry-verified SIFT matches between two views 45 degrees apart (COLMAP proxy)."""
    sift = cv2.SIFT_create()
    matcher = cv2.BFMatcher()
    p = resolve_params("tiny")
    neighbour = p.rings[0][2]  # first view of the second (staggered) ring
    for region in _meta(synth_tiny)["regions"]:
        cam = _cam(synth_tiny, region, "0000")
        a, b = cam["drone"][0], cam["drone"][neighbour]
        root = synth_tiny / region
        ia = cv2.imread(str(root / a["image"]), cv2.IMREAD_GRAYSCALE)
        ib = cv2.imread(str(root / b["image"]), cv2.IMREAD_GRAYSCALE)
        ka, fa = sift.detectAndCompute(ia, None)
        kb, fb = sift.detectAndCompute(ib, None)
        assert len(ka) > 100 and len(kb) > 100, region
        good = [m for m, n in matcher.knnMatch(fa, fb, k=2) if m.distance < 0.8 * n.distance]
        pa = np.float32([ka[m.queryIdx].pt for m in good]) + 0.5  # cv2: centres at integers
        pb = np.float32([kb[m.trainIdx].pt for m in good]) + 0.5
        # verify each match with the ground-truth depth and cameras
        da = np.load(root / a["depth"])
        z = da[pa[:, 1].astype(int), pa[:, 0].astype(int)]
        K = np.asarray(a["K"])
        Xa = np.stack(
            [(pa[:, 0] - K[0, 2]) / K[0, 0] * z, (pa[:, 1] - K[1, 2]) / K[1, 1] * z, z], -1
        )
        Ta, Tb = np.asarray(a["world_from_camera"]), np.linalg.inv(b["world_from_camera"])
        Xb = (Xa @ Ta[:3, :3].T + Ta[:3, 3]) @ Tb[:3, :3].T + Tb[:3, 3]
        uv = Xb[:, :2] / Xb[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
        correct = np.linalg.norm(uv - pb, axis=1) < 3.0
        assert correct.sum() >= 10, (region, int(correct.sum()), len(good))


@pytest.mark.gl
def test_same_seed_identical_other_seed_different(tmp_path: Path):
    from geolink.data.synthetic import GLUnavailableError, generate

    try:
        a = generate(tmp_path / "a", "tiny", seed=3, **SMALL)
    except GLUnavailableError as e:
        pytest.skip(str(e))
    b = generate(tmp_path / "b", "tiny", seed=3, **{**SMALL, "workers": 2})
    c = generate(tmp_path / "c", "tiny", seed=4, **SMALL)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert len(fa) > 10 and fa.keys() == fb.keys() == fc.keys()
    images = [k for k in fa if k.endswith((".jpg", ".npy"))]
    assert all(fa[k] == fb[k] for k in images)
    assert sum(fa[k] != fc[k] for k in images) > 0.9 * len(images)


@pytest.mark.gl
def test_resume_overwrite_and_mismatch(tmp_path: Path):
    from geolink.data.synthetic import GLUnavailableError, generate

    out = tmp_path / "w"
    try:
        generate(out, "tiny", seed=1, **SMALL)
    except GLUnavailableError as e:
        pytest.skip(str(e))
    cam = next((out / "suburb" / "cameras").glob("*.json"))
    before = cam.stat().st_mtime_ns
    cam2 = out / "suburb" / "cameras" / "0001.json"
    cam2.unlink()  # an interrupted run: one location missing
    (out / "synth.json").rename(out / ".synth_pending.json")
    generate(out, "tiny", seed=1, **SMALL)
    assert cam2.exists() and (out / "synth.json").exists()
    assert cam.stat().st_mtime_ns == before or cam == cam2
    with pytest.raises(DataError, match="overwrite"):
        generate(out, "tiny", seed=2, **SMALL)
    generate(out, "tiny", seed=2, overwrite=True, **SMALL)
    assert _meta(out)["seed"] == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("mine")
    with pytest.raises(DataError, match="not a synthetic benchmark"):
        generate(tmp_path / "other", "tiny", **SMALL)


@pytest.mark.gl
def test_fixed_heights_mode_and_no_depth(tmp_path: Path):
    from geolink.data.synthetic import GLUnavailableError, generate

    opts = {
        **SMALL,
        "drone_mode": "fixed_heights",
        "heights": (150.0, 250.0),
        "views_per_height": 2,
        "write_depth": False,
    }
    try:
        root = generate(tmp_path / "s", "tiny", **opts)
    except GLUnavailableError as e:
        pytest.skip(str(e))
    cam = _cam(root, "suburb", "0000")
    assert [v["altitude"] for v in cam["drone"]] == [150.0, 150.0, 250.0, 250.0]
    assert [v["radius"] for v in cam["drone"]] == pytest.approx([90.0, 90.0, 150.0, 150.0])
    # write_depth=False: no depth maps, and the cameras do not point at any
    assert not (root / "suburb" / "depth").exists()
    assert all("depth" not in v for v in [*cam["drone"], cam["satellite"]])


@pytest.mark.gl
def test_cli_and_contact_sheet(tmp_path: Path, synth_tiny: Path):
    from geolink.cli.main import main
    from geolink.data.synthetic.contact_sheet import contact_sheet

    sheet = contact_sheet(synth_tiny, tmp_path / "sheet.png", locations_per_region=1, tile=64)
    n_regions = len(_meta(synth_tiny)["regions"])
    assert sheet.shape[0] >= 64 * n_regions and sheet.shape[1] >= 64 * 5
    assert cv2.imread(str(tmp_path / "sheet.png")).shape == sheet.shape
    args = ["synth", "--preset", "tiny", "--out", str(tmp_path / "cli"), "--seed", "5"]
    args += [f"{k}={json.dumps(v)}" for k, v in SMALL.items()]
    assert main(args) == 0
    assert _meta(tmp_path / "cli")["seed"] == 5
    assert main(["synth", "--preset", "tiny", "--out", str(tmp_path / "x"), "nonsense=1"]) == 2


@pytest.mark.gl
def test_regions_differ_in_appearance(synth_tiny: Path):
    """Each region is its own domain: its drone images have a different colour signature."""
    stats = {}
    for region in _meta(synth_tiny)["regions"]:
        files = sorted((synth_tiny / region).glob("*/*drone/*/*.jpg"))
        bgr = np.concatenate([cv2.imread(str(f)).reshape(-1, 3) for f in files]).astype(float)
        sat = cv2.cvtColor(bgr.astype(np.uint8)[None], cv2.COLOR_BGR2HSV)[0, :, 1].astype(float)
        stats[region] = np.r_[bgr.mean(0), sat.mean()]
    names = list(stats)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.linalg.norm(stats[a] - stats[b]) > 10, (a, b, stats[a], stats[b])
