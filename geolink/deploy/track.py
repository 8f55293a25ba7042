"""Tracking along a flight: a particle filter over metric positions, fed by retrieval (#12.3).

Why a particle filter and not an HMM over the tile grid: the observations are metric (a tile
centre, or a refined position with an uncertainty of metres), overlapping tiles make the grid's
cells ambiguous, and an HMM's state must be as fine as the answer we want (metres over km², a
million states) while particles only cover where the drone can be. A particle filter also keeps
several hypotheses through an ambiguous stretch and, with a few particles drawn from every new
observation, recovers once a frame is recognised again.

State per particle: east/north position and velocity, metres and m/s in a local frame about the
index's tiles. Each frame:

1. **predict:** constant velocity with Gaussian acceleration noise, speeds clipped to
   ``max_speed_mps``; ``dt`` is the frames' time step;
2. **weigh:** the likelihood of a particle is a floor plus a mixture: Gaussians of
   sigma ``tile_sigma`` (a fraction of the footprint) around the top-``top_k`` tile centres,
   weighted by a softmax of their retrieval scores at temperature ``temperature``; and, when
   refinement verified a tile, a Gaussian around the refined position of sigma
   ``max(2 x uncertainty, refined_sigma_min)`` carrying weight ``refined_weight``. The floor is
   ``floor`` for retrieval alone and ``fix_floor`` (much lower) for a frame with a verified fix,
   which is rarely wrong;
3. **resample** (systematic) when the effective sample size falls below half, and replace
   ``inject`` of the particles by draws from the frame's observation (recovery);
4. **estimate:** the weighted mean of the particles near the densest cell of a coarse histogram
   (a mean over two modes would sit between them), with the weighted RMS spread.

Nothing here reads a frame's true position; :func:`track_flight` takes it only to report errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from geolink.deploy.localizer import LocateResult
from geolink.errors import ConfigError
from geolink.utils.geodesy import enu_to_latlon, latlon_to_enu


@dataclass(frozen=True)
class TrackConfig:
    particles: int = 3000
    max_speed_mps: float = 25.0
    accel_sigma: float = 2.0  # m/s^2
    top_k: int = 20  # tiles per frame in the likelihood
    temperature: float = 0.05  # softmax temperature of the retrieval scores
    tile_sigma: float = 0.5  # likelihood sigma around a tile centre, in footprints
    floor: float = 0.2  # likelihood floor: no single retrieval can kill the truth
    # the floor when refinement verified a tile: a verified fix is rarely wrong (0 wrong tiles
    # verified in 1,600 frames, docs/deployment.md), so it outweighs retrieval by far
    fix_floor: float = 0.01
    refined_weight: float = 0.8
    refined_sigma_min: float = 10.0  # metres
    inject: float = 0.05  # share of particles drawn from each observation
    seed: int = 0

    def __post_init__(self) -> None:
        ok = {
            "particles": self.particles >= 100,
            "max_speed_mps": self.max_speed_mps > 0,
            "accel_sigma": self.accel_sigma > 0,
            "top_k": self.top_k >= 1,
            "temperature": self.temperature > 0,
            "tile_sigma": self.tile_sigma > 0,
            "floor": 0 < self.floor < 1,
            "fix_floor": 0 < self.fix_floor < 1,
            "refined_weight": 0 <= self.refined_weight <= 1,
            "refined_sigma_min": self.refined_sigma_min > 0,
            "inject": 0 <= self.inject < 0.5,
        }
        bad = [k for k, good in ok.items() if not good]
        if bad:
            raise ConfigError(
                "track: invalid "
                + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
                + " (particles >= 100, 0 < floor < 1, 0 <= inject < 0.5, the rest positive)"
            )


@dataclass
class TrackEstimate:
    lat: float
    lon: float
    east_m: float  # in the tracker's local frame
    north_m: float
    spread_m: float  # weighted RMS distance of the particles from the estimate
    frame: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ParticleTracker:
    """One flight's filter. ``update(result, dt)`` takes a frame's :class:`LocateResult` (top-k
    matches with positions and footprints, and its refinement if any) and returns the estimate.
    """

    def __init__(self, origin: tuple[float, float], conf: TrackConfig | None = None):
        self.conf = conf or TrackConfig()
        self.origin = origin
        self.rng = np.random.default_rng(self.conf.seed)
        self.x: np.ndarray | None = None  # (N, 4): east, north, v_east, v_north
        self.w: np.ndarray | None = None
        self.frame = -1

    def update(self, res: LocateResult, dt: float = 1.0) -> TrackEstimate | None:
        """:meth:`predict` by ``dt`` seconds, then :meth:`correct` with ``res``."""
        self.predict(dt)
        return self.correct(res)

    def predict(self, dt: float) -> TrackEstimate | None:
        """Move the particles ``dt`` seconds on; the predicted estimate (None before the first
        observation)."""
        self.frame += 1
        if self.x is None:
            return None
        self._predict(dt)
        return self._estimate()

    def correct(self, res: LocateResult) -> TrackEstimate | None:
        """Weigh by a frame's result, resample, and return the estimate; None until a frame has
        a tile with a position."""
        obs = self._observation(res)
        if obs is None:
            return self._estimate() if self.x is not None else None
        if self.x is None:  # the first observation: particles drawn from it, equal weights
            n = self.conf.particles
            self.x = np.c_[self._draw(obs, n), np.zeros((n, 2))]
            self.w = np.full(n, 1.0 / n)
            return self._estimate()
        w = self.w * self._likelihood(obs, self.x[:, :2])
        total = w.sum()
        self.w = w / total if total > 0 and np.isfinite(total) else np.full_like(w, 1 / len(w))
        self._resample_and_inject(obs)
        return self._estimate()

    # -------------------------------------------------------------------- steps
    def _observation(self, res: LocateResult) -> dict[str, Any] | None:
        ms = [m for m in res.matches[: self.conf.top_k] if m.lat is not None and m.lon is not None]
        if not ms:
            return None
        e, n = latlon_to_enu(
            np.array([m.lat for m in ms]), np.array([m.lon for m in ms]), self.origin
        )
        scores = np.array([m.score for m in ms], np.float64)
        p = np.exp((scores - scores.max()) / self.conf.temperature)
        footprint = np.array([m.footprint_m or 100.0 for m in ms], np.float64)
        obs = {"xy": np.c_[e, n], "p": p / p.sum(), "sigma": self.conf.tile_sigma * footprint}
        fix = res.refinement or {}
        if fix.get("ok"):
            re, rn = latlon_to_enu(fix["lat"], fix["lon"], self.origin)
            sigma = max(2 * (fix.get("uncertainty_m") or 0.0), self.conf.refined_sigma_min)
            obs["refined"] = (np.array([float(re), float(rn)]), sigma)
        return obs

    def _likelihood(self, obs: dict[str, Any], xy: np.ndarray) -> np.ndarray:
        d2 = ((xy[:, None, :] - obs["xy"][None]) ** 2).sum(-1)
        tiles = (obs["p"][None] * np.exp(-d2 / (2 * obs["sigma"][None] ** 2))).sum(1)
        floor = self.conf.floor
        if "refined" in obs:
            c, s = obs["refined"]
            ref = np.exp(-((xy - c) ** 2).sum(1) / (2 * s**2))
            w = self.conf.refined_weight
            tiles = (1 - w) * tiles + w * ref
            floor = self.conf.fix_floor
        return floor + (1 - floor) * tiles

    def _draw(self, obs: dict[str, Any], n: int) -> np.ndarray:
        """``n`` positions drawn from the observation's mixture, each from the refined fix (with
        probability ``refined_weight``, when there is one) or from a tile."""
        k = self.rng.choice(len(obs["p"]), n, p=obs["p"])
        out = obs["xy"][k] + self.rng.normal(0, 1, (n, 2)) * obs["sigma"][k, None]
        if "refined" in obs:
            c, s = obs["refined"]
            from_fix = self.rng.random(n) < self.conf.refined_weight
            out[from_fix] = c + self.rng.normal(0, s, (int(from_fix.sum()), 2))
        return out

    def _predict(self, dt: float) -> None:
        c = self.conf
        self.x[:, 2:] += self.rng.normal(0, c.accel_sigma * dt, (len(self.x), 2))
        speed = np.linalg.norm(self.x[:, 2:], axis=1, keepdims=True)
        self.x[:, 2:] *= np.minimum(1.0, c.max_speed_mps / np.maximum(speed, 1e-9))
        self.x[:, :2] += self.x[:, 2:] * dt

    def _resample_and_inject(self, obs: dict[str, Any]) -> None:
        n = len(self.w)
        if 1.0 / np.sum(self.w**2) < n / 2:
            u = (self.rng.random() + np.arange(n)) / n
            idx = np.minimum(np.searchsorted(np.cumsum(self.w), u), n - 1)
            self.x, self.w = self.x[idx], np.full(n, 1.0 / n)
        m = int(self.conf.inject * n)
        if m:
            j = self.rng.choice(n, m, replace=False)
            self.x[j, :2] = self._draw(obs, m)
            angle = self.rng.uniform(0, 2 * np.pi, m)
            speed = self.rng.uniform(0, self.conf.max_speed_mps, m)
            self.x[j, 2:] = np.c_[np.sin(angle), np.cos(angle)] * speed[:, None]
            self.w[j] = 1.0 / n
            self.w /= self.w.sum()

    def _estimate(self) -> TrackEstimate:
        xy, w = self.x[:, :2], self.w
        cell = max(25.0, 2 * self.conf.refined_sigma_min)
        keys = np.floor(xy / cell).astype(np.int64)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        mass = np.bincount(inv.ravel(), weights=w, minlength=len(uniq))
        centre = (uniq[np.argmax(mass)] + 0.5) * cell
        near = np.linalg.norm(xy - centre, axis=1) <= 2 * cell
        est = np.average(xy[near], axis=0, weights=w[near]) if w[near].sum() > 0 else centre
        spread = float(np.sqrt(np.average(((xy - est) ** 2).sum(1), weights=w)))
        lat, lon = enu_to_latlon(est[0], est[1], self.origin)
        return TrackEstimate(
            float(lat), float(lon), float(est[0]), float(est[1]), spread, self.frame
        )
