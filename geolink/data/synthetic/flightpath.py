"""Drone flight paths over a map: straight legs and turns with per-leg altitude and attitude.

Used by :mod:`geolink.data.synthetic.flight`; pure numpy, no rendering.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from geolink.data.synthetic.flight import MapParams


def flight_path(p: MapParams, rng: np.random.Generator) -> list[dict[str, float]]:
    """Frame poses along one flight: straight legs and turns inside the map's margin.

    Returns one dict per frame: east, north (metres from the map centre), altitude_m, yaw_deg,
    pitch_deg, roll_deg, t_s. A leg that would leave the flyable square ends early and turns
    towards the map centre.
    """
    lim = p.half_m - p.margin_m
    pos = rng.uniform(-0.5 * lim, 0.5 * lim, 2)
    heading = float(rng.uniform(0, 360))
    frames: list[dict[str, float]] = []
    travelled, leg = 0.0, _new_leg(p, rng, None)
    while len(frames) * p.spacing_m <= p.length_m:
        frames.append(_frame(p, rng, pos, heading, leg, travelled))
        travelled += p.spacing_m
        leg["left"] -= p.spacing_m
        heading = _steer(p, leg, pos, heading, lim, rng)
        rad = math.radians(heading)
        pos = pos + p.spacing_m * np.array([math.sin(rad), math.cos(rad)])
        if leg["left"] <= 0 and leg["turn"] == 0:
            leg = _new_leg(p, rng, leg)
    return frames


def _new_leg(p: MapParams, rng: np.random.Generator, prev: dict | None) -> dict[str, float]:
    """A straight leg: its length, camera attitude and target altitude; then a turn."""
    turn = float(rng.uniform(*p.turn_deg) * rng.choice([-1, 1]))
    return {
        "left": float(rng.uniform(*p.leg_m)),
        "turn": 0.0,
        "next_turn": turn,
        "pitch": float(rng.uniform(*p.pitch_deg)),
        "yaw_offset": float(rng.uniform(-p.yaw_offset_deg, p.yaw_offset_deg)),
        "altitude": float(rng.uniform(*p.altitude_m)),
        "from_altitude": prev["altitude"] if prev else float(rng.uniform(*p.altitude_m)),
        "length": 0.0,
    }


def _steer(
    p: MapParams, leg: dict, pos: np.ndarray, heading: float, lim: float, rng: np.random.Generator
) -> float:
    """The heading for the next step: straight, turning, or turning back towards the centre."""
    step_deg = math.degrees(p.spacing_m / p.turn_radius_m)
    ahead = pos + 3 * p.spacing_m * np.array(
        [math.sin(math.radians(heading)), math.cos(math.radians(heading))]
    )
    if leg["turn"] == 0 and (leg["left"] <= 0 or np.any(np.abs(ahead) > lim)):
        if np.any(np.abs(ahead) > lim):  # turn back towards the centre
            to_centre = math.degrees(math.atan2(-pos[0], -pos[1]))
            leg["turn"] = (to_centre - heading + 180) % 360 - 180 + float(rng.uniform(-20, 20))
        else:
            leg["turn"] = leg["next_turn"]
    if leg["turn"] != 0:
        d = max(-step_deg, min(step_deg, leg["turn"]))
        leg["turn"] = 0.0 if abs(leg["turn"] - d) < 1e-9 else leg["turn"] - d
        heading = (heading + d) % 360
        if leg["turn"] == 0:
            leg["left"] = min(leg["left"], 0.0)  # a new leg after the turn
    return heading


def _frame(p: MapParams, rng, pos: np.ndarray, heading: float, leg: dict, travelled: float):
    leg["length"] += p.spacing_m
    ramp = min(1.0, leg["length"] / 150.0)  # climb or descend over the first 150 m of a leg
    altitude = leg["from_altitude"] + ramp * (leg["altitude"] - leg["from_altitude"])
    return {
        "east": float(pos[0]),
        "north": float(pos[1]),
        "altitude_m": float(altitude),
        "yaw_deg": float((heading + leg["yaw_offset"]) % 360),
        "pitch_deg": leg["pitch"],
        "roll_deg": float(rng.uniform(-p.roll_deg, p.roll_deg)),
        "t_s": travelled / p.speed_mps,
    }
