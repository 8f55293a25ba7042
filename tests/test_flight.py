"""Contiguous synthetic maps and flights (#12.1): layout, geo-reference, determinism, path ranges,
poses consistent with the orthophoto, strict parameters and resume."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest

from geolink.data.synthetic.flight import generate_map, resolve_map_params
from geolink.data.synthetic.flightpath import flight_path
from geolink.errors import ConfigError, DataError
from geolink.utils import conf

SMALL = {"flights": 1, "length_m": 160.0, "spacing_m": 40.0}


@pytest.fixture(scope="module")
def tiny_map(tmp_path_factory):
    from geolink.data.synthetic import GLUnavailableError

    try:
        return generate_map(tmp_path_factory.mktemp("map") / "m", "tiny", seed=3, **SMALL)
    except GLUnavailableError as e:
        pytest.skip(f"no OpenGL: {e}")


def _poses(root, flight="f00"):
    with open(root / "flights" / flight / "poses.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.gl
def test_layout_and_geo_reference(tiny_map):
    rasterio = pytest.importorskip("rasterio")
    meta = json.loads((tiny_map / "map.json").read_text())
    gt = meta["geotransform"]
    with rasterio.open(tiny_map / "map.tif") as ds:
        assert ds.crs.to_string() == "EPSG:4326" and ds.count == 3
        assert ds.width == ds.height == gt["size_px"] == 400  # 400 m at 1 m/px
        west, south, east, north = ds.bounds
    lat0, lon0 = meta["origin_latlon"]
    # the map is centred on the origin; 400 m = 0.003593 degrees of latitude on R = 6378137 m
    assert (north + south) / 2 == pytest.approx(lat0, abs=1e-9)
    assert (west + east) / 2 == pytest.approx(lon0, abs=1e-9)
    assert north - south == pytest.approx(math.degrees(400 / 6378137), rel=1e-9)
    rows = _poses(tiny_map)
    frames = sorted((tiny_map / "flights" / "f00" / "frames").glob("*.jpg"))
    assert [r["name"] for r in rows] == [p.stem for p in frames] and len(rows) == 5
    assert cv2.imread(str(frames[0])).shape == (160, 160, 3)
    flight = json.loads((tiny_map / "flights" / "f00" / "flight.json").read_text())
    assert len(flight["frames"]) == len(rows) and np.asarray(flight["K"]).shape == (3, 3)


@pytest.mark.gl
def test_same_seed_same_flight(tiny_map, tmp_path):
    again = generate_map(tmp_path / "m", "tiny", seed=3, **SMALL)
    assert _poses(again) == _poses(tiny_map)
    a = (tiny_map / "flights" / "f00" / "frames" / "0002.jpg").read_bytes()
    assert (again / "flights" / "f00" / "frames" / "0002.jpg").read_bytes() == a


def test_flight_paths_stay_in_their_ranges():
    p = resolve_map_params("default")
    for seed in range(3):
        frames = flight_path(p, np.random.default_rng(seed))
        xy = np.array([[f["east"], f["north"]] for f in frames])
        assert len(frames) == int(p.length_m / p.spacing_m) + 1
        assert np.abs(xy).max() <= p.half_m - p.margin_m + 2 * p.turn_radius_m
        steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        assert np.allclose(steps, p.spacing_m)
        alt = [f["altitude_m"] for f in frames]
        pitch = [f["pitch_deg"] for f in frames]
        assert p.altitude_m[0] <= min(alt) and max(alt) <= p.altitude_m[1]
        assert p.pitch_deg[0] <= min(pitch) and max(pitch) <= p.pitch_deg[1]
        headings = np.degrees(np.arctan2(np.diff(xy[:, 0]), np.diff(xy[:, 1])))
        turns = np.abs((np.diff(headings) + 180) % 360 - 180)
        # it turns (legs of 300-700 m in 2.5 km), never tighter than the turn radius
        assert turns.sum() > 180
        assert turns.max() <= math.degrees(p.spacing_m / p.turn_radius_m) + 1e-6


@pytest.mark.gl
def test_poses_project_the_orthophoto_onto_the_frames(tiny_map):
    """A ground point taken from the orthophoto and projected with a frame's pose lands on the
    frame's matching keypoint: SIFT matches agree with the written pose to a pixel or two."""
    rasterio = pytest.importorskip("rasterio")
    from geolink.data.synthetic import world
    from geolink.data.synthetic.flight import MAP_REGION
    from geolink.data.synthetic.presets import SynthParams
    from geolink.data.synthetic.styles import get_style

    p = resolve_map_params("tiny", **SMALL)
    scene = world.build_scene(
        get_style(p.style),
        SynthParams(scene_half_m=p.half_m, ground_px=p.ground_px),
        3,
        MAP_REGION,
        0,
    )
    with rasterio.open(tiny_map / "map.tif") as ds:
        ortho = np.moveaxis(ds.read(), 0, -1)
    flight = json.loads((tiny_map / "flights" / "f00" / "flight.json").read_text())
    K = np.asarray(flight["K"])
    sift = cv2.SIFT_create()
    ko, do = sift.detectAndCompute(cv2.cvtColor(ortho, cv2.COLOR_RGB2GRAY), None)
    good_share = []
    for fr in flight["frames"][::2]:
        img = cv2.imread(str(tiny_map / "flights" / "f00" / "frames" / f"{fr['name']}.jpg"), 0)
        kf, df = sift.detectAndCompute(img, None)
        pairs = cv2.BFMatcher().knnMatch(df, do, k=2)
        good = [a for a, b in pairs if a.distance < 0.75 * b.distance]
        q = np.array([kf[g.queryIdx].pt for g in good]) + 0.5
        t = np.array([ko[g.trainIdx].pt for g in good]) + 0.5
        east, north = t[:, 0] * p.m_per_px - p.half_m, p.half_m - t[:, 1] * p.m_per_px
        X = np.c_[east, north, scene.height_at(east, north)]
        T = np.asarray(fr["world_from_camera"])
        Xc = (X - T[:3, 3]) @ T[:3, :3]
        uv = Xc @ K.T
        err = np.linalg.norm(uv[:, :2] / uv[:, 2:] - q, axis=1)
        assert len(good) >= 10
        good_share.append(np.mean(err < 2.0))
    # matches are not all right (repeated roofs), but most are, and only where the pose says
    assert np.median(good_share) > 0.5, good_share


@pytest.mark.gl
def test_strict_parameters_and_resume(tiny_map, capsys):
    from geolink.cli.main import main

    with pytest.raises(ConfigError, match="unknown map parameter"):
        resolve_map_params("tiny", wingspan=3)
    with pytest.raises(ConfigError, match="margin_m"):
        resolve_map_params("tiny", margin_m=190)
    with pytest.raises(ConfigError, match="unknown map preset"):
        resolve_map_params("huge")
    assert set(conf.preset_names("map")) == {"tiny", "default"}
    # a range given on the command line is parsed to numbers, and a bad one named
    assert resolve_map_params("tiny", altitude_m="100,200").altitude_m == (100.0, 200.0)
    with pytest.raises(ConfigError, match="altitude_m"):
        resolve_map_params("tiny", altitude_m="low,high")
    with pytest.raises(ConfigError, match="chunk_px"):
        resolve_map_params("tiny", chunk_px=0)
    with pytest.raises(DataError, match="length_m"):
        generate_map(tiny_map, "tiny", seed=3, **{**SMALL, "length_m": 200.0})
    frame = tiny_map / "flights" / "f00" / "frames" / "0000.jpg"
    before = frame.stat().st_mtime_ns
    generate_map(tiny_map, "tiny", seed=3, **SMALL)  # finished: nothing is rendered again
    assert frame.stat().st_mtime_ns == before
    assert (
        main(["synth", "--map", "--preset", "tiny", "--out", str(tiny_map), "style=nowhere"]) == 2
    )
    assert "unknown region style" in capsys.readouterr().err
