"""``geolink track``: localize a flight's frames in order and track them with a particle filter."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("track", help="track a flight's frames against an index")
    p.add_argument("frames", type=Path, metavar="FRAMES_DIR", help="folder of frames (name order)")
    p.add_argument("--index", required=True, help="index folder from `geolink index`")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--poses", type=Path,
        help="CSV name,t_s,lat,lon,...,fx,fy,cx,cy (as `geolink synth --map` writes): time "
        "stamps, intrinsics, and true positions for the error report (never used to track)",
    )  # fmt: skip
    p.add_argument("--no-refine", action="store_true", help="retrieval only, no refinement")
    p.add_argument("--refine-k", type=int, default=5, help="tiles to verify per frame (default 5)")
    p.add_argument("--hfov", type=float, help="camera field of view when --poses has no intrinsics")
    p.add_argument(
        "--interval", type=float, default=2.0,
        help="seconds between frames when --poses has no t_s (default 2)",
    )  # fmt: skip
    p.add_argument("--max-speed", type=float, default=25.0, help="m/s (default 25)")
    p.add_argument("--particles", type=int, default=3000)
    model = p.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", help="checkpoint (default: the one recorded in the index)")
    model.add_argument("--onnx", help="ONNX encoder from `geolink export`")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")


def run(args: argparse.Namespace) -> int:
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from tqdm import tqdm

    from geolink.deploy.localizer import Localizer
    from geolink.deploy.mission import read_poses, track_frames, write_outputs
    from geolink.deploy.refine import RefineConfig
    from geolink.deploy.tiles import find_images
    from geolink.deploy.track import TrackConfig
    from geolink.errors import DataError

    if not args.frames.is_dir():
        raise DataError(f"frames folder not found: {args.frames}")
    if args.hfov is not None and not 0 < args.hfov < 180:
        raise DataError(f"--hfov must be between 0 and 180 degrees, got {args.hfov}")
    if args.interval <= 0:
        raise DataError(f"--interval must be positive seconds, got {args.interval}")
    frames = find_images(args.frames, "frames folder")
    poses = read_poses(args.poses) if args.poses else None
    conf = TrackConfig(max_speed_mps=args.max_speed, particles=args.particles)
    refine = None if args.no_refine else RefineConfig(top_k=args.refine_k)
    loc = Localizer.from_paths(args.index, args.checkpoint, args.onnx, threads=args.threads)
    with tqdm(total=len(frames), desc="tracking", unit="frame") as bar:
        rows = track_frames(loc, frames, poses, conf, refine, args.interval, args.hfov, bar)
    meta = {"frames_dir": str(args.frames), "index": str(args.index), "refine": refine is not None,
            "track_config": conf.__dict__}  # fmt: skip
    s = write_outputs(rows, loc, args.out, meta)
    print(
        f"{len(rows)} frames tracked -> {args.out} (trajectory.csv, trajectory.geojson, track.png)"
    )
    print(
        f"  {s.get('ms_per_frame', 0):.0f} ms/frame; refined {s['refined_share']:.0f} % of frames"
    )
    for k, label in (("tile", "top-1 tile centre"), ("refined", "refined"), ("track", "tracked")):
        if k in s:
            e = s[k]
            print(
                f"  {label:<18} median {e['median_m']:7.1f} m  p90 {e['p90_m']:7.1f} m  "
                f"<=25 m {e['within25']:5.1f} %  <=50 m {e['within50']:5.1f} %"
            )
    return 0
