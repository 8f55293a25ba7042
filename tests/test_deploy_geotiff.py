"""GeoTIFF tiling: tile sizes from the geotransform in geographic and projected CRSs, tile
centres in WGS84 (hand-computed), nodata handling, and errors. Needs rasterio."""

import numpy as np
import pytest

from geolink.errors import DataError

rasterio = pytest.importorskip("rasterio", reason="GeoTIFF tiling needs rasterio")


def _write_geotiff(path, data, transform, crs, nodata=None):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(data)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # affine's `*` in rasterio
def test_geotiff_geographic_tiling_hand_computed(tmp_path):
    from affine import Affine

    from geolink.deploy.geo import metres_per_degree
    from geolink.deploy.tiles import tiles_from_geotiff

    lat0, lon0, n = 47.0, 8.0, 120
    m_lat, m_lon = metres_per_degree(47.0 - 60 * 1e-4)  # metres per degree at the raster centre
    res = 1e-4  # degrees per pixel
    data = np.random.default_rng(0).integers(1, 255, (3, n, n), dtype=np.uint8)
    path = tmp_path / "map.tif"
    _write_geotiff(path, data, Affine(res, 0, lon0, 0, -res, lat0), "EPSG:4326")
    tile_m = 40 * res * m_lat  # 40 px tall
    tiles = tiles_from_geotiff(path, tile_m, stride_m=tile_m)
    th = round(tile_m / (res * m_lat))
    tw = round(tile_m / (res * m_lon))
    assert th == 40 and tw > 40  # a degree of longitude is shorter: more pixels per tile
    rows, cols = (n - th) // th + 1, (n - tw) // tw + 1
    assert len(tiles) == rows * cols
    t = tiles[cols + 1]  # second row, second column
    c, r, w, h = t.source["window"]
    assert (c, r, w, h) == (tw, th, tw, th) and t.id == f"map_r{th}_c{tw}"
    assert t.lat == pytest.approx(lat0 - (r + h / 2) * res, abs=1e-9)
    assert t.lon == pytest.approx(lon0 + (c + w / 2) * res, abs=1e-9)
    np.testing.assert_array_equal(t.load(), np.moveaxis(data[:, r : r + h, c : c + w], 0, -1))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # affine's `*` in rasterio
def test_geotiff_projected_stride_and_nodata(tmp_path):
    from affine import Affine
    from rasterio.warp import transform as warp

    from geolink.deploy.tiles import tiles_from_geotiff

    data = np.full((3, 100, 100), 90, dtype=np.uint8)
    data[:, :, 50:] = 0  # right half is nodata
    path = tmp_path / "utm.tif"
    x0, y0 = 465_000.0, 5_248_000.0  # UTM 32N, metres; 0.5 m pixels
    _write_geotiff(path, data, Affine(0.5, 0, x0, 0, -0.5, y0), "EPSG:32632", nodata=0)
    tiles = tiles_from_geotiff(path, tile_size_m=10.0, stride_m=5.0)  # 20 px tiles, 10 px step
    assert all(t.source["window"][2:] == [20, 20] for t in tiles)
    # Columns 0..30 are fully valid; column 40 is half valid (kept at min_valid 0.5); 50+ dropped.
    assert sorted({t.source["window"][0] for t in tiles}) == [0, 10, 20, 30, 40]
    assert len(tiles) == 9 * 5
    t = tiles[0]
    lon, lat = warp("EPSG:32632", "EPSG:4326", [x0 + 5.0], [y0 - 5.0])
    assert (t.lat, t.lon) == pytest.approx((lat[0], lon[0]), abs=1e-9)
    with pytest.raises(DataError, match="larger than the raster"):
        tiles_from_geotiff(path, tile_size_m=80.0)
    with pytest.raises(DataError, match="not found"):
        tiles_from_geotiff(tmp_path / "missing.tif", 10.0)
