"""Multi-weather drone images (Table 4): the MuseNet / University-WX imgaug conditions.

imgaug does not import on numpy 2, so every operator is re-implemented here with numpy and
OpenCV following imgaug 0.4's algorithms and the MuseNet parameters (see docs/fidelity.md):

- brightness (dark, light): ``MultiplyAndAddToBrightness`` in a randomly chosen colour space
  (YCrCb, HSV, HLS, Lab, Luv, YUV), mul and add in random order;
- fog: ``CloudLayer`` (frequency-noise alpha mask and intensity map, blended towards ~225);
- rain / snow: ``RainLayer`` / ``SnowflakesLayer`` (salt noise gated by coarse Beta noise,
  upscaled, blurred, motion-blurred along a random angle, then blended), 1-3 layers per op;
- wind: ``MotionBlur(k=15)`` with a random angle and direction.

Randomness is keyed by (condition, image key, op index, MuseNet seed), so a condition applied
to the same image always gives the same pixels, independent of order or process. Weather is for
drone images only; satellite images stay clean.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from geolink.errors import ConfigError, DataError

log = logging.getLogger(__name__)

WEATHER_VERSION = 1
PAPER_CONDITIONS = ("fog_rain", "fog_snow", "rain_snow", "wind")
CONDITIONS = (*PAPER_CONDITIONS, "dark", "fog", "rain", "snow", "light")

SNOW_SPEED = (0.007, 0.03)
RAIN_SPEED = (0.04, 0.06)

_COLORSPACES = {  # name -> (from RGB, to RGB, brightness channel)
    "YCrCb": (cv2.COLOR_RGB2YCrCb, cv2.COLOR_YCrCb2RGB, 0),
    "HSV": (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB, 2),
    "HLS": (cv2.COLOR_RGB2HLS, cv2.COLOR_HLS2RGB, 1),
    "Lab": (cv2.COLOR_RGB2Lab, cv2.COLOR_Lab2RGB, 0),
    "Luv": (cv2.COLOR_RGB2Luv, cv2.COLOR_Luv2RGB, 0),
    "YUV": (cv2.COLOR_RGB2YUV, cv2.COLOR_YUV2RGB, 0),
}


# --- random helpers --------------------------------------------------------------------------
def _rng(condition: str, key: str, op_index: int, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{condition}|{key}|{op_index}|{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _uniform(rng: np.random.Generator, value: float | tuple[float, float]) -> float:
    return float(rng.uniform(*value)) if isinstance(value, tuple) else float(value)


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_CUBIC)


def frequency_noise(
    h: int, w: int, exponent: float, size_px_max: int, rng: np.random.Generator
) -> np.ndarray:
    """Noise with power spectrum ~ f^exponent, in [0, 1], shape (h, w).

    Generated at a size whose longer side is ``size_px_max`` (or the image size if smaller),
    then upscaled cubically: small ``size_px_max`` gives large, smooth blobs.
    """
    scale = min(1.0, size_px_max / max(h, w))
    hs, ws = max(2, round(h * scale)), max(2, round(w * scale))
    white = rng.normal(size=(hs, ws))
    fy, fx = np.fft.fftfreq(hs)[:, None], np.fft.fftfreq(ws)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0
    weight = f**exponent
    weight[0, 0] = 0.0  # no DC: the mean is set by the caller
    noise = np.real(np.fft.ifft2(np.fft.fft2(white) * weight))
    lo, hi = noise.min(), noise.max()
    noise = (noise - lo) / (hi - lo) if hi > lo else np.zeros_like(noise)
    return np.clip(_resize(noise.astype(np.float32), h, w), 0.0, 1.0)


def motion_kernel(k: int, angle: float, direction: float) -> np.ndarray:
    """A k x k line kernel at ``angle`` degrees (0 = vertical); ``direction`` in [-1, 1] ramps
    the weights along the line (0 = uniform), as imgaug's MotionBlur."""
    k = max(3, int(k))
    kernel = np.zeros((k, k), np.float32)
    d = (float(direction) + 1.0) / 2.0
    kernel[:, k // 2] = np.linspace(d, 1.0 - d, num=k)
    rot = cv2.getRotationMatrix2D(((k - 1) / 2.0, (k - 1) / 2.0), float(angle), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k), flags=cv2.INTER_LINEAR)
    total = kernel.sum()
    return kernel / total if total > 0 else np.full((k, k), 1.0 / (k * k), np.float32)


# --- operators (image: uint8 (H, W, 3) RGB -> same) ---------------------------------------------
def brightness(
    image: np.ndarray, rng: np.random.Generator, mul: float, add: float | tuple[float, float]
) -> np.ndarray:
    space = list(_COLORSPACES)[int(rng.integers(len(_COLORSPACES)))]
    to, back, ch = _COLORSPACES[space]
    add_v = _uniform(rng, add)
    mul_first = bool(rng.integers(2))
    conv = cv2.cvtColor(image, to)
    c = conv[..., ch].astype(np.float32)
    c = c * mul + add_v if mul_first else (c + add_v) * mul
    conv[..., ch] = np.clip(np.round(c), 0, 255).astype(np.uint8)
    return cv2.cvtColor(conv, back)


def cloud_layer(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MuseNet fog: CloudLayer(intensity_mean 225, intensity_freq_exponent -2, coarse scale 2,
    alpha_min 1.0, alpha_multiplier 0.9, alpha_size_px_max 10, alpha_freq_exponent -2,
    sparsity 0.9, density_multiplier 0.5)."""
    h, w = image.shape[:2]
    mean = 225.0
    coarse = _resize((mean + rng.normal(0.0, 2.0, size=(8, 8))).astype(np.float32), h, w)
    fine = mean * ((2.0 * frequency_noise(h, w, -2.0, max(h, w), rng) - 1.0) / 5.0)
    intensity = np.clip(coarse + fine, 0, 255)
    alpha = 1.0 + 0.9 * frequency_noise(h, w, -2.0, 10, rng)
    alpha = np.clip((alpha**0.9) * 0.5, 0.0, 1.0)[..., None]
    out = (1.0 - alpha) * image.astype(np.float32) + alpha * intensity[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _particle_noise(
    h: int, w: int, rng: np.random.Generator, p: dict
) -> tuple[np.ndarray, float, float]:
    """One snow/rain layer's particle map (uint8 (h, w)), its speed and size uniformity."""
    density = _uniform(rng, p["density"])
    uniformity = _uniform(rng, p["density_uniformity"])
    size = _uniform(rng, p["size"])
    size_uniformity = _uniform(rng, p["size_uniformity"])
    angle = _uniform(rng, p["angle"])
    speed = _uniform(rng, p["speed"])
    blur_fraction = _uniform(rng, p["blur_sigma_fraction"])
    down = float(np.clip(1.0 - size, 0.001, 1.0))
    hd, wd = max(1, int(h * down)), max(1, int(w * down))
    # salt: bright values in [127.5, 255] on a fraction `density` of low-resolution pixels
    salt = 0.5 + np.abs(rng.beta(0.5, 0.5, size=(hd, wd)) - 0.5)
    noise = np.where(rng.random((hd, wd)) < density, salt * 255.0, 0.0).astype(np.float32)
    gate = rng.beta(1.0, max(1.0 - uniformity, 1e-3), size=(8, 8)).astype(np.float32)
    noise = np.clip(noise * np.clip(_resize(gate, hd, wd), 0.0, 1.0), 0, 255).astype(np.uint8)
    noise = _resize(noise, h, w)
    if p["blur"]:
        sigma = float(np.clip(max(h, w) * blur_fraction, 0.5, 3.75))
        noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma)
    k = int(speed * max(h, w))
    if k > 1:
        noise = cv2.filter2D(noise, -1, motion_kernel(k, angle, 1.0))
    return noise, speed, size_uniformity


def _snow_layer(image: np.ndarray, rng: np.random.Generator, flake_size, speed) -> np.ndarray:
    params = dict(
        density=(0.005, 0.075), density_uniformity=(0.3, 0.9), size=flake_size,
        size_uniformity=(0.4, 0.8), angle=(-30.0, 30.0), speed=speed,
        blur_sigma_fraction=(0.0001, 0.001), blur=True,
    )  # fmt: skip
    noise, spd, su = _particle_noise(*image.shape[:2], rng, params)
    gain, gain_adj = 1.0 + 2.0 * (1.0 - su), 1.0 + 5.0 * (1.0 - su)
    flakes = (255.0 * (noise.astype(np.float32) / 255.0) ** gain * gain_adj)[..., None]
    out = np.clip(image.astype(np.float32) + (0.1 + 20.0 * spd) * flakes, 0, 255).astype(np.uint8)
    out = np.maximum(out.astype(np.float32), (1.0 + 20.0 * spd) * flakes)
    return np.clip(out, 0, 255).astype(np.uint8)


def _rain_layer(image: np.ndarray, rng: np.random.Generator, drop_size, speed) -> np.ndarray:
    params = dict(
        density=(0.03, 0.14), density_uniformity=(0.8, 1.0), size=drop_size,
        size_uniformity=(0.2, 0.5), angle=(-15.0, 15.0), speed=speed,
        blur_sigma_fraction=0.001, blur=False,
    )  # fmt: skip
    noise, _, _ = _particle_noise(*image.shape[:2], rng, params)
    total = float(np.repeat(noise.ravel()[:334], 3)[:1000].sum())  # first 1000 RGB values
    color = 110.0 + (240.0 - 110.0) % (total if total > 0 else 1.0)
    alpha = np.clip(1.3 * noise.astype(np.float32) / 255.0, 0.0, 1.0)[..., None]
    out = (1.0 - alpha) * image.astype(np.float32) + alpha * color
    return np.clip(out, 0, 255).astype(np.uint8)


def _layers(layer: Callable, image: np.ndarray, rng: np.random.Generator, *args) -> np.ndarray:
    """imgaug's Snowflakes / Rain wrappers run 1 to 3 independent layers."""
    for _ in range(int(rng.integers(1, 4))):
        image = layer(image, rng, *args)
    return image


def snowflakes(image, rng, flake_size=(0.2, 0.7), speed=SNOW_SPEED) -> np.ndarray:
    return _layers(_snow_layer, image, rng, flake_size, speed)


def rain(image, rng, drop_size=(0.01, 0.02), speed=RAIN_SPEED) -> np.ndarray:
    return _layers(_rain_layer, image, rng, drop_size, speed)


def motion_blur(image: np.ndarray, rng: np.random.Generator, k: int = 15) -> np.ndarray:
    kernel = motion_kernel(k, rng.uniform(0.0, 360.0), rng.uniform(-1.0, 1.0))
    return cv2.filter2D(image, -1, kernel)


# --- the MuseNet condition table: condition -> [(op, MuseNet seed)] ------------------------
def _op(fn: Callable, **kw) -> Callable:
    return lambda image, rng: fn(image, rng, **kw)


_FOG = _op(cloud_layer)
SEQUENCES: dict[str, list[tuple[Callable, int]]] = {
    "dark": [(_op(brightness, mul=0.4, add=-15.0), 1991)],
    "light": [(_op(brightness, mul=1.6, add=(0.0, 30.0)), 1992)],
    "fog": [(_FOG, 35)],
    "rain": [
        (_op(rain, drop_size=(0.05, 0.1)), 38),
        (_op(rain, drop_size=(0.05, 0.1)), 35),
        (_op(rain, drop_size=(0.1, 0.2)), 73),
        (_op(rain, drop_size=(0.1, 0.2)), 93),
        (_op(rain, drop_size=(0.05, 0.2)), 95),
    ],
    "snow": [
        (_op(snowflakes, flake_size=(0.5, 0.8)), 38),
        (_op(snowflakes, flake_size=(0.5, 0.8)), 35),
        (_op(snowflakes, flake_size=(0.6, 0.9)), 74),
        (_op(snowflakes, flake_size=(0.6, 0.9)), 94),
        (_op(snowflakes, flake_size=(0.5, 0.9)), 96),
    ],
    "fog_rain": [
        (_FOG, 35),
        (_op(rain, drop_size=(0.05, 0.2)), 35),
        (_op(rain, drop_size=(0.05, 0.2)), 36),
    ],
    "fog_snow": [
        (_FOG, 35),
        (_op(snowflakes, flake_size=(0.5, 0.9)), 35),
        (_op(snowflakes, flake_size=(0.5, 0.9)), 36),
    ],
    "rain_snow": [
        (_op(snowflakes, flake_size=(0.5, 0.8)), 35),
        (_op(rain, drop_size=(0.05, 0.1)), 35),
        (_op(rain, drop_size=(0.1, 0.2)), 92),
        (_op(rain, drop_size=(0.05, 0.2)), 91),
        (_op(snowflakes, flake_size=(0.6, 0.9)), 74),
    ],
    "wind": [(_op(motion_blur, k=15), 17)],
}


def check_condition(condition: str) -> str:
    if condition not in SEQUENCES:
        raise ConfigError(f"unknown weather '{condition}'; available: {', '.join(CONDITIONS)}")
    return condition


def weather_key(path: str | Path) -> str:
    """Key of an image for weather seeding: its last three path parts (e.g.
    ``query_drone/0001/image-01.jpeg``), so moving the dataset root does not change the result."""
    return "/".join(Path(path).parts[-3:])


def apply_weather(image: np.ndarray, condition: str, key: str) -> np.ndarray:
    """Apply ``condition`` to a uint8 RGB image (H, W, 3); same (condition, key) -> same pixels."""
    check_condition(condition)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"weather expects a uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    out = np.ascontiguousarray(image)
    for i, (op, seed) in enumerate(SEQUENCES[condition]):
        out = op(out, _rng(condition, key, i, seed))
    return out


def write_weather(
    src_dir: str | Path, dst_dir: str | Path, condition: str, overwrite: bool = False
) -> Path:
    """Write ``condition`` applied to every image under ``src_dir`` to the same relative paths
    under ``dst_dir`` (once; existing outputs are kept unless ``overwrite``). Returns ``dst_dir``.
    """
    from tqdm.auto import tqdm

    from geolink.data.base import is_image
    from geolink.data.images import load_image
    from geolink.utils.io import atomic_path, atomic_write_json

    check_condition(condition)
    src, dst = Path(src_dir), Path(dst_dir)
    if not src.is_dir():
        raise DataError(f"weather source folder {src} does not exist")
    if src.resolve() == dst.resolve():
        raise DataError(f"weather output folder {dst} must differ from the source folder")
    manifest = dst / "weather.json"
    if manifest.is_file() and not overwrite:
        previous = json.loads(manifest.read_text("utf-8")).get("condition")
        if previous != condition:
            raise DataError(
                f"{dst} already holds weather '{previous}', not '{condition}'; "
                "choose another folder or pass overwrite=True"
            )
    images = sorted(p for p in src.rglob("*") if is_image(p))
    written = 0
    for path in tqdm(images, desc=f"weather {condition}", unit="img"):
        out = dst / path.relative_to(src)
        if out.exists() and not overwrite:
            continue
        img = apply_weather(load_image(path), condition, weather_key(path))
        ext = out.suffix.lower()
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
        ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise DataError(f"cannot encode {out} as {ext}")
        with atomic_path(out) as tmp:
            tmp.write_bytes(buf.tobytes())
        written += 1
    atomic_write_json(
        manifest,
        {
            "condition": condition,
            "source": str(src),
            "images": len(images),
            "version": WEATHER_VERSION,
        },
    )
    log.info(
        "weather %s: %d written, %d kept, in %s", condition, written, len(images) - written, dst
    )
    return dst
