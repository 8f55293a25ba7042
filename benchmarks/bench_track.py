"""Flights over contiguous synthetic maps (#12.5): the error in metres of the top-1 tile centre, of
single-frame refinement and of tracking, per style, with a model the demo trained.

Per style: ``geolink synth --map`` (preset ``default``: a 2 km x 2 km map at 0.5 m/px, 5 flights
of 2.5 km, a 256 px frame every 25 m, altitude 120-250 m, camera tilt 0-40°), an index of the
map cut into 180 m tiles every 90 m (the footprint the demo's model was trained on), then
``geolink track`` on every flight with refinement and the true intrinsics. The tracker never sees
the true positions; they only score it.

    geolink demo                                   # once: the checkpoints in ./geolink-demo
    python benchmarks/bench_track.py [--demo geolink-demo] [--run geolink]
        [--styles campus,campus_autumn,suburb,downtown] [--flights 5] [--work bench-track]
        [--json out.json]

Maps and indexes are kept in ``--work`` and reused. Prints one Markdown table and the targets of
#12: refined median <= 0.5x the tile-centre median on frames whose top-1 tile is right (its
square contains the drone), tracked median <= 0.5x the tile-centre median over whole flights,
and tracked >= 80 % of frames within 50 m on the training style (campus).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from geolink.deploy.mission import error_stats

TRAINING_STYLE = "campus"


def _prepare(style: str, args: argparse.Namespace, enc) -> tuple[Path, Path]:
    from geolink.data.synthetic.flight import generate_map
    from geolink.deploy import store
    from geolink.deploy.tiles import tiles_from_geotiff

    work = Path(args.work)
    root = generate_map(work / style, "default", args.seed, style=style, flights=args.flights)
    index = work / f"{style}_index"
    if not (index / "meta.json").exists():
        tiles = tiles_from_geotiff(root / "map.tif", args.tile_size, args.stride)
        store.main({}, tiles, enc, index)
    return root, index


def _right(row: dict, footprint: float) -> bool:
    """The top-1 tile's square contains the true position."""
    from geolink.utils.geodesy import latlon_to_enu

    e, n = latlon_to_enu(row["tile_lat"], row["tile_lon"], (row["true_lat"], row["true_lon"]))
    return max(abs(float(e)), abs(float(n))) <= footprint / 2


def bench_style(style: str, args: argparse.Namespace, enc) -> dict:
    from geolink.deploy.localizer import Localizer
    from geolink.deploy.mission import read_poses, track_frames
    from geolink.deploy.refine import RefineConfig
    from geolink.deploy.store import TileIndex
    from geolink.deploy.tiles import find_images

    root, index = _prepare(style, args, enc)
    loc = Localizer(TileIndex.load(index), enc)
    rows = []
    for fdir in sorted((root / "flights").iterdir()):
        frames = find_images(fdir / "frames", "frames folder")
        poses = read_poses(fdir / "poses.csv")
        rows += track_frames(loc, frames, poses, refine=RefineConfig(top_k=5))
    right = [r for r in rows if _right(r, args.tile_size)]
    return {
        "frames": len(rows),
        "flights": len(list((root / "flights").iterdir())),
        "top1_right": 100 * len(right) / len(rows),
        "refined_share": 100 * float(np.mean([r["refined"] for r in rows])),
        "guided_share": 100 * float(np.mean([r["guided"] for r in rows])),
        "ms_per_frame": float(np.median([r["ms"] for r in rows])),
        **{
            f"{k}_all": error_stats([r[f"{k}_error_m"] for r in rows])
            for k in ("tile", "refined", "track")
        },
        **{
            f"{k}_right": error_stats([r[f"{k}_error_m"] for r in right])
            for k in ("tile", "refined")
        },
    }


def _fmt(s: dict) -> str:
    if not s.get("n"):
        return "- | - | - | -"
    return f"{s['median_m']:.1f} | {s['p90_m']:.1f} | {s['within25']:.0f} % | {s['within50']:.0f} %"


def report(results: dict[str, dict]) -> str:
    head = (
        "| style | frames | top-1 right | estimate | median m | p90 m | ≤ 25 m | ≤ 50 m |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for style, s in results.items():
        tag = f"{style}{' (training style)' if style == TRAINING_STYLE else ''}"
        for key, name in (
            ("tile_all", "(a) top-1 tile centre"),
            ("refined_all", f"(b) refined ({s['refined_share']:.0f} % of frames verified)"),
            ("track_all", f"(c) tracked ({s['guided_share']:.0f} % guided fixes)"),
            ("tile_right", "(a) on top-1-right frames"),
            ("refined_right", "(b) on top-1-right frames"),
        ):
            lines.append(
                f"| {tag} | {s['frames']} | {s['top1_right']:.1f} % | {name} | {_fmt(s[key])} |"
            )
            tag = ""
    lines.append("")
    lines.append("| style | ms/frame (retrieval + refinement + guided refinement + filter) |")
    lines.append("|---|---|")
    lines += [f"| {k} | {s['ms_per_frame']:.0f} |" for k, s in results.items()]
    return "\n".join(lines)


def targets(results: dict[str, dict]) -> list[str]:
    out = []
    for style, s in results.items():
        a, b = s["tile_right"], s["refined_right"]
        if a.get("n"):
            ratio = b["median_m"] / a["median_m"]
            out.append(
                f"{style}: refined/tile median on top-1-right frames = {ratio:.2f} (target <= 0.5): {'met' if ratio <= 0.5 else 'MISSED'}"
            )
        ratio = s["track_all"]["median_m"] / s["tile_all"]["median_m"]
        out.append(
            f"{style}: tracked/tile median over flights = {ratio:.2f} (target <= 0.5): {'met' if ratio <= 0.5 else 'MISSED'}"
        )
        if style == TRAINING_STYLE:
            w = s["track_all"]["within50"]
            out.append(
                f"{style}: tracked within 50 m = {w:.1f} % (target >= 80 %): {'met' if w >= 80 else 'MISSED'}"
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--demo", default="geolink-demo", help="output folder of `geolink demo`")
    ap.add_argument("--run", default="geolink", help="which trained run (geolink, baseline)")
    ap.add_argument("--styles", default="campus,campus_autumn,suburb,downtown")
    ap.add_argument("--flights", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tile-size", type=float, default=180.0)
    ap.add_argument("--stride", type=float, default=90.0)
    ap.add_argument("--work", default="bench-track", help="maps and indexes (reused)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("geolink").setLevel(logging.WARNING)
    from geolink.deploy.encoders import load_encoder

    checkpoint = Path(args.demo) / "runs" / args.run / "checkpoints" / "best.safetensors"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint} not found: run `geolink demo --out {args.demo}` first")
    enc = load_encoder(checkpoint, None, threads=args.threads)
    results = {}
    for style in args.styles.split(","):
        results[style] = bench_style(style, args, enc)
        print(f"{style} done", flush=True)
    print(report(results))
    print()
    print("\n".join(targets(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
