"""Refinement inside the tile (#12.2): local features + RANSAC verify a tile, re-rank the top-k and
place the query inside the tile, from views of a flat synthetic map whose true poses are known."""

import json

import cv2
import numpy as np
import pytest

from geolink.deploy import store, tiles_from_folder
from geolink.deploy.encoders import TorchEncoder
from geolink.deploy.geo import haversine_m
from geolink.deploy.localizer import Localizer
from geolink.deploy.refine import RefineConfig, Refiner, TileFix, rerank
from geolink.errors import ConfigError
from geolink.testing.deploy import (
    ORIGIN,
    make_checkpoint,
    make_map_tiles,
    nadir_camera,
    render_plane_view,
    textured_map,
)
from geolink.utils.camera import intrinsics
from geolink.utils.geodesy import enu_to_latlon

MAP_PX, M_PER_PX, TILE_PX = 768, 1.0, 256
SIZE = (320, 240)
K = intrinsics(*SIZE, 60.0)


@pytest.fixture(scope="module")
def ground():
    return textured_map(0, MAP_PX)


def _tile(ground, east, north):
    """The TILE_PX tile of the map centred ``east``, ``north`` metres from the map centre."""
    c = int(MAP_PX / 2 + east / M_PER_PX - TILE_PX / 2)
    r = int(MAP_PX / 2 - north / M_PER_PX - TILE_PX / 2)
    lat, lon = enu_to_latlon(east, north, ORIGIN)
    record = {"id": "t", "lat": float(lat), "lon": float(lon), "footprint_m": TILE_PX * M_PER_PX}
    return record, ground[r : r + TILE_PX, c : c + TILE_PX].copy()


def _view(ground, east, north, altitude, yaw, tilt):
    """A pinhole frame of the map (relit) and its pose and look-at ground point."""
    pose, look = nadir_camera(east, north, altitude, yaw, tilt)
    frame = render_plane_view(ground, M_PER_PX, K, pose, SIZE)
    frame = np.clip(frame.astype(np.float32) * 0.85 + 15, 0, 255).astype(np.uint8)
    return frame, pose, look


def _error_m(fix: TileFix, east: float, north: float) -> float:
    lat, lon = enu_to_latlon(east, north, ORIGIN)
    return float(haversine_m(lat, lon, fix.lat, fix.lon))


def test_homography_finds_the_image_centre(ground):
    record, tile = _tile(ground, 20.0, -10.0)
    frame, _, look = _view(ground, 45.0, 15.0, 150.0, yaw=30.0, tilt=0.0)
    (fix,) = Refiner().refine(frame, [(record, lambda: tile)])
    assert fix.ok and fix.method == "homography", fix.reason
    assert fix.inliers >= 12
    # the tile centre is 35 m away; the refined image centre within 2 m
    assert _error_m(fix, *look) < 2.0
    assert fix.uncertainty_m is not None and 0 < fix.uncertainty_m < 5.0


def test_pose_finds_the_nadir_point_of_an_oblique_view(ground):
    record, tile = _tile(ground, 0.0, 0.0)
    east, north, alt = -30.0, -40.0, 150.0
    frame, _, look = _view(ground, east, north, alt, yaw=60.0, tilt=30.0)
    (fix,) = Refiner().refine(frame, [(record, lambda: tile)], K)
    assert fix.ok and fix.method == "pose", fix.reason
    assert _error_m(fix, east, north) < 8.0  # 50 m from the tile centre before refinement
    assert abs(fix.altitude_m - alt) < 0.05 * alt
    # without intrinsics the same frame gives the ground point it looks at, 87 m ahead
    (centre,) = Refiner().refine(frame, [(record, lambda: tile)])
    assert centre.ok and _error_m(centre, *look) < 3.0


def test_unrelated_tile_and_blank_frame_are_not_verified(ground):
    record, _ = _tile(ground, 0.0, 0.0)
    other = textured_map(1, TILE_PX)
    frame, *_ = _view(ground, 0.0, 0.0, 150.0, yaw=0.0, tilt=0.0)
    (fix,) = Refiner().refine(frame, [(record, lambda: other)], K)
    assert not fix.ok and fix.lat is None and "not verified" in fix.reason
    blank = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
    (fix,) = Refiner().refine(blank, [(record, lambda: other)])
    assert not fix.ok and "keypoints" in fix.reason


def test_tile_without_footprint_is_not_refined(ground):
    record, tile = _tile(ground, 0.0, 0.0)
    frame, *_ = _view(ground, 0.0, 0.0, 150.0, yaw=0.0, tilt=0.0)
    (fix,) = Refiner().refine(frame, [({**record, "footprint_m": None}, lambda: tile)])
    assert not fix.ok and "footprint_m" in fix.reason


def test_rerank_puts_verified_tiles_first_by_inliers():
    fixes = [
        TileFix("a", False, 30, 9),
        TileFix("b", True, 40, 20),
        TileFix("c", False, 2, 0),
        TileFix("d", True, 80, 45),
    ]
    assert rerank(fixes) == [3, 1, 0, 2]
    assert rerank([TileFix("x", False, 0, 0), TileFix("y", False, 5, 3)]) == [0, 1]


@pytest.mark.parametrize(
    "bad", [{"top_k": 0}, {"ratio": 1.0}, {"min_inliers": 3}, {"ransac_px": 0}, {"bootstrap": -1}]
)
def test_refine_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError, match=f"invalid {next(iter(bad))}="):
        RefineConfig(**bad)


@pytest.fixture(scope="module")
def map_index(tmp_path_factory, ground):
    """An index of the map cut into 3 x 3 adjoining tiles of 256 m, and its parts."""
    root = tmp_path_factory.mktemp("refine")
    ckpt = make_checkpoint(root / "tiny.safetensors")
    tile_dir, csv_path, centres = make_map_tiles(root, ground, M_PER_PX, TILE_PX, 256)
    enc = TorchEncoder(ckpt)
    out = store.main({}, tiles_from_folder(tile_dir, csv_path), enc, root / "index")
    return root, out, Localizer(store.TileIndex.load(out), enc), centres


def test_localizer_refines_reranks_and_falls_back(map_index, ground):
    _, _, loc, centres = map_index
    east, north = 230.0, -230.0  # inside the south-east tile, 37 m from its centre
    frame, _, look = _view(ground, east, north, 150.0, yaw=210.0, tilt=0.0)
    lat, lon = enu_to_latlon(east, north, ORIGIN)
    n = len(centres)
    plain, refined = (
        loc.locate([frame], n, known=[(lat, lon)], refine=r)[0]
        for r in (None, RefineConfig(top_k=n))
    )
    assert plain.position == "tile_centre" and plain.refinement is None
    best = min(centres, key=lambda c: np.hypot(c[1] - east, c[2] - north))[0]
    assert refined.matches[0].tile_id == best  # whatever the random encoder ranked first
    assert refined.matches[0].inliers >= 12 and refined.matches[0].retrieval_rank >= 1
    assert [m.rank for m in refined.matches] == list(range(1, n + 1))
    assert refined.position == "image_centre" and refined.error_m < 2.0
    assert refined.refinement["ok"] and refined.refinement["tile_id"] == best
    assert "refine" in refined.timing_ms
    # a frame of somewhere else: no tile verifies, the retrieval top-1 centre stays, and says so
    elsewhere = render_plane_view(
        textured_map(7, MAP_PX), M_PER_PX, K, nadir_camera(0, 0, 150, 0)[0], SIZE
    )
    (res,) = loc.locate([elsewhere], 3, refine=RefineConfig(top_k=3))
    assert res.position == "tile_centre" and not res.refinement["ok"]
    assert "not verified" in res.refinement["reason"]
    assert (res.lat, res.lon) == (res.matches[0].lat, res.matches[0].lon)
    assert [m.retrieval_rank for m in res.matches] == [1, 2, 3]


def test_cli_locate_refine(map_index, ground, tmp_path, capsys):
    from geolink.cli.main import main

    _, index_dir, _, _ = map_index
    east, north = -120.0, 90.0
    frame, *_ = _view(ground, east, north, 150.0, yaw=100.0, tilt=25.0)
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    base = ["locate", "--index", str(index_dir), str(path), "--top-k", "9"]
    assert main([*base, "--refine", "--hfov", "60", "--json"]) == 0
    (out,) = json.loads(capsys.readouterr().out)
    assert out["position"] == "nadir" and out["refinement"]["method"] == "pose"
    lat, lon = enu_to_latlon(east, north, ORIGIN)
    assert haversine_m(lat, lon, out["lat"], out["lon"]) < 8.0
    assert main([*base, "--refine"]) == 0
    assert "image centre in m_r" in capsys.readouterr().out
    assert main([*base, "--hfov", "60"]) == 2
    assert "need --refine" in capsys.readouterr().err
    assert main([*base, "--refine", "--intrinsics", "1,2,3"]) == 2
    assert main([*base, "--refine", "--refine-k", "0"]) == 2
    assert main([*base, "--refine", "--refine-k", "10"]) == 2
    assert "more tiles than --top-k" in capsys.readouterr().err


def test_service_refines_on_request(map_index, ground):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from geolink.deploy.serve.app import create_app

    _, _, loc, _ = map_index
    client = TestClient(create_app(loc))
    frame, *_ = _view(ground, 30.0, 40.0, 150.0, yaw=320.0, tilt=20.0)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    files = {"file": ("f.png", buf.tobytes(), "image/png")}
    r = client.post("/locate?top_k=9&refine=true&hfov=60", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["position"] == "nadir" and body["refinement"]["uncertainty_m"] is not None
    lat, lon = enu_to_latlon(30.0, 40.0, ORIGIN)
    assert haversine_m(lat, lon, body["lat"], body["lon"]) < 8.0
    assert client.post("/locate?hfov=60", files=files).status_code == 422
    plain = client.post("/locate?top_k=9", files=files).json()
    assert plain["position"] == "tile_centre" and plain["refinement"] is None


def test_service_map_is_the_index_tiles(map_index, ground):
    """/map.png pastes the tiles where /map.json's frame says they are: the map's pixels at a
    position match the ground there."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from geolink.deploy.mapview import MapFrame
    from geolink.deploy.serve.app import create_app

    _, _, loc, _ = map_index
    client = TestClient(create_app(loc))
    f = client.get("/map.json").json()
    frame = MapFrame(tuple(f["origin"]), f["x0"], f["y1"], f["scale"], f["width"], f["height"])
    png = client.get("/map.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    img = cv2.cvtColor(cv2.imdecode(np.frombuffer(png.content, np.uint8), 1), cv2.COLOR_BGR2RGB)
    assert img.shape == (frame.height, frame.width, 3) and max(img.shape) <= 1024
    expect = cv2.resize(ground, (frame.width, frame.height), interpolation=cv2.INTER_AREA)
    for east, north in [(-300.0, 250.0), (0.0, 0.0), (200.0, -320.0)]:
        lat, lon = enu_to_latlon(east, north, ORIGIN)
        c, r = frame.to_px(lat, lon)
        assert np.abs(img[r, c].astype(int) - expect[r, c].astype(int)).max() <= 40
    # and the whole mosaic is the map resized (to a pixel of registration)
    assert np.median(np.abs(img.astype(int) - expect.astype(int))) <= 12


def test_service_tracks_a_session(map_index, ground):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from geolink.deploy.serve.app import create_app

    _, _, loc, _ = map_index
    client = TestClient(create_app(loc))
    answers = []
    for i in range(4):  # 24 m/s eastwards, 1 s apart
        east, north = -100.0 + 24 * i, 60.0
        frame, *_ = _view(ground, east, north, 150.0, yaw=90.0, tilt=0.0)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        r = client.post("/track/flight-1?dt=1&hfov=60", files={"file": ("f.png", buf.tobytes())})
        assert r.status_code == 200, r.text
        answers.append((r.json(), east, north))
    assert [a["frame"] for a, *_ in answers] == [0, 1, 2, 3]
    last, east, north = answers[-1]
    lat, lon = enu_to_latlon(east, north, ORIGIN)
    assert last["track"] and haversine_m(lat, lon, last["track"]["lat"], last["track"]["lon"]) < 15
    bad = client.post("/track/flight-1", files={"file": ("x.png", b"not an image")})
    assert bad.status_code in (415, 422)
    assert client.delete("/track/flight-1").json()["deleted"] is True
    assert client.delete("/track/flight-1").json()["deleted"] is False


def test_service_track_errors_are_messages(map_index, ground, monkeypatch):
    """A user error inside tracking (e.g. an unreadable tile) is a 400 with its message, not a
    bare 500; beyond the session limit the least recently used session is dropped."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import geolink.deploy.serve.app as app_module
    from geolink.deploy.mission import FlightTracker
    from geolink.errors import DataError

    _, _, loc, _ = map_index
    monkeypatch.setattr(app_module, "MAX_TRACK_SESSIONS", 2)
    client = TestClient(app_module.create_app(loc))
    frame, *_ = _view(ground, 0.0, 0.0, 150.0, yaw=0.0, tilt=0.0)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    files = {"file": ("f.png", buf.tobytes())}
    for name in ("a", "b", "c"):
        assert client.post(f"/track/{name}", files=files).status_code == 200
    assert client.delete("/track/a").json()["deleted"] is False  # dropped for "c"
    assert client.delete("/track/b").json()["deleted"] is True

    def boom(self, *args, **kwargs):
        raise DataError("tile t7: file not found")

    monkeypatch.setattr(FlightTracker, "step", boom)
    r = client.post("/track/c", files=files)
    assert r.status_code == 400 and "tile t7" in r.json()["detail"]
