"""Tile index: FAISS vs exact ranking, save/load, incremental add, resume, checkpoint mixing,
geodesy helpers, EXIF GPS, coordinate CSVs and GeoTIFF tiling."""

import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from geolink.data.images import decode_image
from geolink.deploy import store
from geolink.deploy.geo import exif_gps, haversine_m, lookup_position, read_coords_csv
from geolink.deploy.store import TileIndex
from geolink.deploy.tiles import Tile, tiles_from_folder
from geolink.errors import DataError, GeoLinkError

MODEL = {"name": "t", "backbone": "b", "img_size": 8, "out_dim": 16, "checkpoint_sha256": "aa"}


def _emb(n, d=16, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _records(n, start=0):
    return [
        {"id": f"t{i}", "lat": 1.0, "lon": 2.0, "footprint_m": None, "source": {}}
        for i in range(start, start + n)
    ]


@pytest.mark.parametrize(
    "kind,params", [("flat", {}), ("ivf", {"nlist": 4, "nprobe": 4}), ("hnsw", {"ef_search": 128})]
)
def test_index_types_match_exact_search(kind, params, tmp_path):
    gallery, query = _emb(200), _emb(10, seed=1)
    idx = TileIndex.create(MODEL, kind, n_hint=200, **params)
    idx.add(gallery, _records(200))
    idx.save(tmp_path / "i")
    loaded = TileIndex.load(tmp_path / "i")
    scores, rows = loaded.search(query, 5)
    exact = np.argsort(-(query @ gallery.T), axis=1)[:, :5]
    if kind in ("flat", "ivf"):  # ivf with nprobe = nlist visits every cell: exact
        np.testing.assert_array_equal(rows, exact)
        np.testing.assert_allclose(
            scores, np.take_along_axis(query @ gallery.T, exact, 1), atol=1e-5
        )
    else:
        assert np.mean(rows[:, 0] == exact[:, 0]) >= 0.9
    assert (
        loaded.meta["index"]["type"] == kind and loaded.tiles[rows[0, 0]]["id"] == f"t{rows[0, 0]}"
    )


def test_add_rejects_duplicates_bad_shapes_and_nan():
    idx = TileIndex.create(MODEL)
    idx.add(_emb(3), _records(3))
    with pytest.raises(GeoLinkError, match="already in the index: t1"):
        idx.add(_emb(1), _records(1, start=1))
    with pytest.raises(GeoLinkError, match=r"expected \(2, 16\)"):
        idx.add(_emb(2, d=8), _records(2, start=5))
    bad = _emb(1)
    bad[0, 0] = np.nan
    with pytest.raises(GeoLinkError, match="non-finite.*t9"):
        idx.add(bad, _records(1, start=9))


def test_load_detects_damaged_or_foreign_folders(tmp_path):
    with pytest.raises(DataError, match="not a GeoLink index"):
        TileIndex.load(tmp_path)
    idx = TileIndex.create(MODEL)
    idx.add(_emb(3), _records(3))
    idx.save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["tiles"] = meta["tiles"][:2]
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="holds 3 vectors.*lists 2 tiles"):
        TileIndex.load(tmp_path)


class FakeEncoder:
    """Embeds an image as its normalised 4x4 grey thumbnail (16-d); counts calls."""

    def __init__(self, sha="aa"):
        self.info = {**MODEL, "checkpoint_sha256": sha}
        self.seen = 0

    def embed(self, images):
        import cv2

        self.seen += len(images)
        out = np.stack([cv2.resize(im.mean(2).astype(np.float32), (4, 4)).ravel() for im in images])
        out -= out.mean(1, keepdims=True)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def _tiles(n, start=0):
    rng = np.random.default_rng(start)
    imgs = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(n)]
    return [
        Tile(f"t{start + i}", 10.0, 20.0 + i, 100.0, {"kind": "mem"}, _loader=lambda im=im: im)
        for i, im in enumerate(imgs)
    ]


def test_main_add_resume_and_refusals(tmp_path):
    out = tmp_path / "idx"
    enc = FakeEncoder()
    store.main({"batch_size": 2}, _tiles(5), enc, out)
    assert enc.seen == 5 and len(TileIndex.load(out)) == 5
    store.main({}, _tiles(5), enc, out)  # same tiles again: nothing to do
    assert enc.seen == 5
    with pytest.raises(GeoLinkError, match="--add"):
        store.main({}, _tiles(2, start=5), enc, out)
    store.main({}, _tiles(2, start=5), enc, out, add=True)
    idx = TileIndex.load(out)
    assert len(idx) == 7 and enc.seen == 7 and idx.tiles[6]["id"] == "t6"
    with pytest.raises(GeoLinkError, match="cannot be mixed"):
        store.main({}, _tiles(1, start=9), FakeEncoder(sha="bb"), out, add=True)
    store.main({}, _tiles(3), FakeEncoder(sha="bb"), out, overwrite=True)
    assert len(TileIndex.load(out)) == 3


def test_interrupted_build_resumes(tmp_path):
    out = tmp_path / "idx"

    class Dies(FakeEncoder):
        def embed(self, images):
            if self.seen >= 4:
                raise KeyboardInterrupt
            return super().embed(images)

    with pytest.raises(KeyboardInterrupt):
        store.main({"batch_size": 2, "flush_every": 2}, _tiles(8), Dies(), out)
    partial = TileIndex.load(out)
    assert len(partial) == 4 and partial.meta["complete"] is False
    enc = FakeEncoder()
    store.main({"batch_size": 2}, _tiles(8), enc, out)  # no --add needed to finish a build
    assert enc.seen == 4 and len(TileIndex.load(out)) == 8 and TileIndex.load(out).meta["complete"]


def test_haversine_hand_values():
    # One degree along a meridian = pi R / 180 with R = 6378.137 km (the project's one Earth
    # radius, DenseUAV's); along the equator the same.
    assert haversine_m(0, 0, 1, 0) == pytest.approx(math.pi * 6_378_137.0 / 180, rel=1e-9)
    assert haversine_m(0, 0, 0, 1) == pytest.approx(111_319.49, abs=0.01)
    # At 60 deg latitude, 0.001 deg of longitude is half as long as at the equator.
    assert haversine_m(60, 10, 60, 10.001) == pytest.approx(0.5 * 111.31949, rel=1e-4)
    assert haversine_m(12.3, 45.6, 12.3, 45.6) == 0.0


def _jpeg_with_gps(lat_dms, lat_ref, lon_dms, lon_ref):
    img = Image.new("RGB", (32, 32), (120, 80, 40))
    exif = Image.Exif()
    exif[0x8825] = {1: lat_ref, 2: lat_dms, 3: lon_ref, 4: lon_dms}
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_exif_gps_round_trip(tmp_path):
    data = _jpeg_with_gps((47.0, 22.0, 36.84), "N", (8.0, 32.0, 30.12), "W")
    lat, lon = exif_gps(data)
    assert lat == pytest.approx(47 + 22 / 60 + 36.84 / 3600, abs=1e-6)
    assert lon == pytest.approx(-(8 + 32 / 60 + 30.12 / 3600), abs=1e-6)
    (tmp_path / "a.jpg").write_bytes(data)
    assert exif_gps(tmp_path / "a.jpg") == pytest.approx((lat, lon))
    plain = io.BytesIO()
    Image.new("RGB", (8, 8)).save(plain, "PNG")
    assert exif_gps(plain.getvalue()) is None and exif_gps(b"garbage") is None


def test_coords_csv_and_lookup(tmp_path):
    p = tmp_path / "gps.csv"
    p.write_text("name,lat,lon\n0003,30.5,114.4\nimg.jpg,1,2\n")
    coords = read_coords_csv(p)
    assert lookup_position(tmp_path / "q" / "0003" / "image-01.jpg", coords) == (30.5, 114.4)
    assert lookup_position(tmp_path / "img.jpg", coords) == (1.0, 2.0)
    assert lookup_position(tmp_path / "other.jpg", coords) is None
    p.write_text("name,lat\nx,1\n")
    with pytest.raises(DataError, match="missing column.*lon"):
        read_coords_csv(p)
    p.write_text("name,lat,lon\nx,1,east\n")
    with pytest.raises(DataError, match="gps.csv:2"):
        read_coords_csv(p)


def test_tiles_from_folder_needs_every_tile_in_csv(tmp_path):
    for name in ("a", "b"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.png")
    (tmp_path / "c.csv").write_text("name,lat,lon,footprint_m\na,1,2,150\n")
    with pytest.raises(DataError, match="no coordinates for 1 tile.*b"):
        tiles_from_folder(tmp_path, tmp_path / "c.csv")
    (tmp_path / "c.csv").write_text("name,lat,lon,footprint_m\na,1,2,150\nb,3,4,\n")
    tiles = tiles_from_folder(tmp_path, tmp_path / "c.csv", footprint_m=99.0)
    assert [(t.id, t.lat, t.footprint_m) for t in tiles] == [("a", 1.0, 150.0), ("b", 3.0, 99.0)]
    assert tiles[0].load().shape == (8, 8, 3)


def test_decode_image_errors():
    with pytest.raises(DataError, match="empty"):
        decode_image(b"", "x")
    with pytest.raises(DataError, match="truncated JPEG"):
        decode_image(b"\xff\xd8\xff\xe0 truncated jpeg", "x")
    buf = io.BytesIO()
    Image.new("L", (5, 4), 7).save(buf, "PNG")
    img = decode_image(buf.getvalue())
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8 and (img == 7).all()


def test_one_earth_radius_for_metrics_localizer_tiles_and_synthetic_coordinates():
    """#11: the evaluator (MA@m), the localizer and the synthetic benchmark measured metres on
    two different spheres (6378.137 km and 6371.0088 km): 0.1 % apart."""
    import geolink.data.synthetic.cameras as cameras
    import geolink.deploy.geo as geo
    import geolink.evaluate.metrics as metrics

    assert metrics.haversine_m is geo.haversine_m
    assert cameras.enu_to_latlon.__module__ == geo.haversine_m.__module__ == "geolink.utils.geodesy"
    # 1 km north in the synthetic frame is 1 km for the localizer
    lat, lon = cameras.enu_to_latlon(0.0, 1000.0, (30.0, 120.0))
    assert geo.haversine_m(30.0, 120.0, float(lat), float(lon)) == pytest.approx(1000.0, rel=1e-9)
