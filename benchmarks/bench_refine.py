"""Refinement inside the tile (#12.2) on the demo's synthetic benchmark: how far from the drone is
the estimate, with retrieval alone (the top-1 tile's centre) and after refinement.

For every region the test satellites become a tile index (one tile per location, ``footprint_m``
from ``cameras/*.json``), and every test drone image is localized with a checkpoint the demo trained.
The drone's true position is its camera centre from ``cameras/<loc>.json``; refinement gets the
true intrinsics, so it estimates the nadir point from the pose (no attitude given).

The demo's drone views are U1652-like orbits: cameras 100-140 m from the target, looking at it
from 115-160 m up. The tile centre is therefore 100-140 m from the drone even when the tile is
right; this is the case refinement is for. Flights (nadir to oblique, #12.1) come later.

    geolink demo                                   # once: data + checkpoints in ./geolink-demo
    python benchmarks/bench_refine.py [--demo geolink-demo] [--run geolink] [--top-k 5]
        [--regions campus,suburb] [--limit 0] [--threads 2] [--json out.json]

Prints one Markdown table per region; errors in metres over the frames whose retrieval top-1 tile
is right ("right"), over all frames ("all") and over the frames where a tile verified. ``within 2σ``: share of refined frames whose true
error is at most twice the reported uncertainty.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from geolink.deploy.mission import error_stats


def _truth(data: Path) -> dict[str, dict]:
    """Drone image path -> {lat, lon (camera centre), K, location}."""
    from geolink.utils.geodesy import enu_to_latlon

    out = {}
    for cam in sorted((data / "cameras").glob("*.json")):
        d = json.loads(cam.read_text())
        if d["split"] != "test":
            continue
        centre = np.asarray(d["satellite"]["center_xyz"], np.float64)
        for view in d["drone"]:
            T = np.asarray(view["world_from_camera"], np.float64)
            east, north = T[0, 3] - centre[0], T[1, 3] - centre[1]
            lat, lon = enu_to_latlon(east, north, (d["lat"], d["lon"]))
            out[str((data / view["image"]).resolve())] = {
                "lat": float(lat),
                "lon": float(lon),
                "K": np.asarray(view["K"], np.float64),
                "location": d["location"],
                "footprint_m": float(d["satellite"]["footprint_m"]),
            }
    return out


def bench_region(data: Path, checkpoint: Path, args: argparse.Namespace) -> dict:
    from geolink.deploy import store, tiles_from_folder
    from geolink.deploy.encoders import load_encoder
    from geolink.deploy.localizer import Localizer
    from geolink.deploy.refine import RefineConfig

    truth = _truth(data)
    footprint = next(iter(truth.values()))["footprint_m"]
    paths = sorted(truth)[: args.limit or None]
    enc = load_encoder(checkpoint, None, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tiles = tiles_from_folder(data / "test" / "gallery_satellite", data / "gps.csv", footprint)
        out = store.main({}, tiles, enc, Path(tmp) / "index")
        loc = Localizer(store.TileIndex.load(out), enc)
        conf = RefineConfig(top_k=args.top_k)
        rows = []
        for p in paths:
            t = truth[p]
            image = _read(p)
            (plain,) = loc.locate([image], args.top_k, known=[(t["lat"], t["lon"])])
            t0 = time.perf_counter()
            (ref,) = loc.locate(
                [image], args.top_k, known=[(t["lat"], t["lon"])], refine=conf, intrinsics=[t["K"]]
            )
            ms = 1e3 * (time.perf_counter() - t0)
            fix = ref.refinement or {}
            rows.append(
                {
                    "right": plain.matches[0].tile_id == t["location"],
                    "right_after": ref.matches[0].tile_id == t["location"],
                    "tile_err": plain.error_m,
                    "ref_err": ref.error_m,
                    "refined": bool(fix.get("ok")),
                    "sigma": fix.get("uncertainty_m"),
                    "ms_plain": sum(plain.timing_ms.values()),
                    "ms_refine": ms,
                }
            )
    return _summary(rows)


def _read(path: str) -> np.ndarray:
    from geolink.data.images import load_image

    return load_image(path)


def _summary(rows: list[dict]) -> dict:
    right = [r for r in rows if r["right"]]
    refined = [r for r in rows if r["refined"]]
    covered = [r for r in refined if r["sigma"] is not None]
    return {
        "frames": len(rows),
        "r1": 100 * len(right) / len(rows),
        "r1_reranked": 100 * sum(r["right_after"] for r in rows) / len(rows),
        "refined_share": 100 * len(refined) / len(rows),
        "tile_right": error_stats([r["tile_err"] for r in right]),
        "refined_right": error_stats([r["ref_err"] for r in right]),
        "tile_all": error_stats([r["tile_err"] for r in rows]),
        "refined_all": error_stats([r["ref_err"] for r in rows]),
        "refined_verified": error_stats([r["ref_err"] for r in refined]),
        "verified_wrong": sum(r["refined"] and not r["right_after"] for r in rows),
        "within_2sigma": (
            100 * np.mean([r["ref_err"] <= 2 * r["sigma"] for r in covered]) if covered else None
        ),
        "ms_plain": statistics.median(r["ms_plain"] for r in rows),
        "ms_refine": statistics.median(r["ms_refine"] for r in rows),
    }


def _table(region: str, s: dict) -> str:
    def row(name: str, st: dict) -> str:
        if not st.get("n"):
            return f"| {name} | 0 | - | - | - | - |"
        return (
            f"| {name} | {st['n']} | {st['median_m']:.1f} | {st['p90_m']:.1f} | "
            f"{st['within25']:.0f} % | {st['within50']:.0f} % |"
        )

    two = "-" if s["within_2sigma"] is None else f"{s['within_2sigma']:.0f} %"
    lines = [
        f"### {region}: {s['frames']} drone frames; R@1 {s['r1']:.1f} % -> "
        f"{s['r1_reranked']:.1f} % after re-ranking; refined {s['refined_share']:.0f} % of frames; "
        f"within 2σ {two}; {s['ms_plain']:.0f} ms/frame without, {s['ms_refine']:.0f} ms with refinement",
        "",
        "| estimate (frames) | n | median m | p90 m | ≤ 25 m | ≤ 50 m |",
        "|---|---|---|---|---|---|",
        row("top-1 tile centre (right)", s["tile_right"]),
        row("refined (right)", s["refined_right"]),
        row("top-1 tile centre (all)", s["tile_all"]),
        row("refined (all)", s["refined_all"]),
        row("refined, verified frames only", s["refined_verified"]),
        "",
        f"{s['verified_wrong']} frame(s) verified a wrong tile.",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--demo", default="geolink-demo", help="output folder of `geolink demo`")
    ap.add_argument("--run", default="geolink", help="which trained run (geolink, baseline)")
    ap.add_argument("--regions", help="comma-separated regions (default: all in the demo)")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0, help="frames per region (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the summaries here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    demo = Path(args.demo)
    checkpoint = demo / "runs" / args.run / "checkpoints" / "best.safetensors"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint} not found: run `geolink demo --out {demo}` first")
    regions = args.regions.split(",") if args.regions else None
    regions = regions or json.loads((demo / "data" / "synth.json").read_text())["params"]["regions"]
    results = {}
    for region in regions:
        results[region] = bench_region(demo / "data" / region, checkpoint, args)
        print(_table(region, results[region]) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
