"""Weather re-implementations: deterministic per (condition, key), and they change the image."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from geolink.data import weather as W
from geolink.data.images import load_image
from geolink.errors import ConfigError, DataError


def _scene(h: int = 96, w: int = 128) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (90, 110, 80)
    for i in range(0, w, 24):
        cv2.rectangle(img, (i + 3, 10 + i // 4), (i + 18, 40 + i // 4), (200, 180, 160), -1)
    cv2.line(img, (0, h // 2), (w - 1, h // 2 + 10), (60, 60, 60), 5)
    return img


def test_condition_lists():
    assert W.PAPER_CONDITIONS == ("fog_rain", "fog_snow", "rain_snow", "wind")
    assert set(W.CONDITIONS) == {
        "fog_rain",
        "fog_snow",
        "rain_snow",
        "wind",
        "dark",
        "fog",
        "rain",
        "snow",
        "light",
    }
    assert set(W.SEQUENCES) == set(W.CONDITIONS)


@pytest.mark.parametrize("condition", W.CONDITIONS)
def test_weather_deterministic_and_changes_image(condition):
    img = _scene()
    a = W.apply_weather(img, condition, "query_drone/0001/image-01.jpeg")
    b = W.apply_weather(img.copy(), condition, "query_drone/0001/image-01.jpeg")
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - img.astype(int)).mean() > 1.0
    assert np.array_equal(img, _scene())  # input untouched


@pytest.mark.parametrize("condition", ["fog", "rain", "snow", "wind", "light"])
def test_weather_depends_on_key(condition):
    img = _scene()
    a = W.apply_weather(img, condition, "a/0001/1.jpg")
    b = W.apply_weather(img, condition, "a/0001/2.jpg")
    assert not np.array_equal(a, b)


def test_dark_and_light_move_brightness_the_right_way():
    img = _scene()
    grey = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(float).mean()  # noqa: E731
    for key in ("k1", "k2", "k3"):
        assert grey(W.apply_weather(img, "dark", key)) < 0.55 * grey(img)
        assert grey(W.apply_weather(img, "light", key)) > 1.4 * grey(img)


def test_fog_blends_towards_bright_haze():
    img = np.zeros((64, 64, 3), np.uint8)
    out = W.apply_weather(img, "fog", "k").astype(float)
    # alpha in [0.5, ~0.89] towards intensity ~225 (+-45): a black image becomes bright grey
    assert 90 < out.mean() < 230
    assert out.std(axis=2).mean() < 1.0  # the haze is grey


def test_wind_is_a_normalised_motion_blur():
    k = W.motion_kernel(15, 30.0, 0.0)
    assert k.shape == (15, 15) and k.sum() == pytest.approx(1.0, abs=1e-5)
    flat = np.full((40, 40, 3), 77, np.uint8)
    assert np.array_equal(W.apply_weather(flat, "wind", "x"), flat)  # blur keeps a flat image


def test_frequency_noise_range_and_smoothness():
    rng = np.random.default_rng(0)
    n = W.frequency_noise(64, 80, -2.0, 10, rng)
    assert n.shape == (64, 80) and n.min() >= 0.0 and n.max() <= 1.0
    assert np.abs(np.diff(n, axis=1)).mean() < 0.05  # large blobs, not white noise


def test_bad_inputs():
    with pytest.raises(ConfigError, match="unknown weather 'sandstorm'; available: fog_rain"):
        W.apply_weather(_scene(), "sandstorm", "k")
    with pytest.raises(DataError, match="uint8"):
        W.apply_weather(_scene().astype(np.float32), "fog", "k")


def test_write_weather_once_to_disk(tmp_path):
    src = tmp_path / "query_drone"
    for loc in ("0001", "0002"):
        (src / loc).mkdir(parents=True)
        cv2.imwrite(str(src / loc / "image-01.png"), _scene())
    dst = W.write_weather(src, tmp_path / "out", "rain_snow")
    out = dst / "0001/image-01.png"
    assert (
        out.is_file() and json.loads((dst / "weather.json").read_text())["condition"] == "rain_snow"
    )
    src_img = load_image(src / "0001/image-01.png")
    expected = W.apply_weather(src_img, "rain_snow", W.weather_key(src / "0001/image-01.png"))
    assert np.array_equal(load_image(out), expected)  # PNG is lossless: same as on the fly
    mtime = out.stat().st_mtime_ns
    W.write_weather(src, tmp_path / "out", "rain_snow")  # resume: nothing rewritten
    assert out.stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="already holds weather 'rain_snow'"):
        W.write_weather(src, tmp_path / "out", "fog")
    with pytest.raises(DataError, match="does not exist"):
        W.write_weather(tmp_path / "missing", tmp_path / "o2", "fog")
