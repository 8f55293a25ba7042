"""``geolink locate``: top-k satellite tiles (and lat/lon) for drone images."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from geolink.errors import DataError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("locate", help="localize drone images against an index")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--index", required=True, help="index folder from `geolink index`")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON (one object per image)")
    p.add_argument(
        "--coords",
        help="CSV name,lat,lon of the queries' true positions (name = "
        "file name, stem or parent folder); default: EXIF GPS when present",
    )
    model = p.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", help="checkpoint (default: the one recorded in the index)")
    model.add_argument("--onnx", help="ONNX encoder from `geolink export` (runs on onnxruntime)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--device", default="cpu", help="torch device for --checkpoint")
    ref = p.add_argument_group("refinement (a position inside the tile; docs/deployment.md)")
    ref.add_argument(
        "--refine", action="store_true",
        help="verify the top tiles with local features (SIFT + RANSAC), re-rank them and refine "
        "the position inside the best verified tile; the tile centre stays when none verifies",
    )  # fmt: skip
    ref.add_argument("--refine-k", type=int, help="tiles to verify (default: --top-k)")
    cam = ref.add_mutually_exclusive_group()
    cam.add_argument(
        "--hfov", type=float,
        help="horizontal field of view (degrees) of the queries' pinhole camera: with it the "
        "refined position is the drone's nadir point (from its pose), not the image centre",
    )  # fmt: skip
    cam.add_argument(
        "--intrinsics", metavar="FX,FY,CX,CY",
        help="the queries' pinhole intrinsics in their own pixels (instead of --hfov)",
    )  # fmt: skip
    p.add_argument(
        "--skip-corrupt", action="store_true",
        help="localize the readable images and list the unreadable ones (exit status 1)",
    )  # fmt: skip


def _expand(items: list[str]) -> list[Path]:
    from geolink.deploy.tiles import IMAGE_EXTS, find_images

    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += find_images(p, "query folder")
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXTS:
                raise DataError(f"{p} is not an image ({', '.join(IMAGE_EXTS)})")
            paths.append(p)
        else:
            raise DataError(f"query image not found: {p}")
    return paths


def _fmt(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # CPU-feature probing chatter
    from geolink.deploy.geo import read_coords_csv
    from geolink.deploy.localizer import Localizer

    paths = _expand(args.images)
    coords = read_coords_csv(args.coords) if args.coords else None
    loc = Localizer.from_paths(
        args.index, args.checkpoint, args.onnx, device=args.device, threads=args.threads
    )
    skipped: list | None = [] if args.skip_corrupt else None
    refine, camera = _refine_settings(args)
    results = loc.locate_paths(
        paths, top_k=args.top_k, coords=coords, skipped=skipped, refine=refine, camera=camera
    )
    status = 1 if skipped else 0
    for path, reason in skipped or []:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return status
    errors = []
    for r in results:
        head = f"{r.query}: {_fmt(r.lat, 6)}, {_fmt(r.lon, 6)}"
        if refine is not None:
            head += f"  [{_describe(r)}]"
        if r.error_m is not None:
            head += f"  (error {r.error_m:.1f} m vs {r.known_source})"
            errors.append(r.error_m)
        print(head)
        extra = "  inliers" if refine is not None else ""
        print(
            f"  rank  tile                      score      lat          lon          dist_m{extra}"
        )
        for m in r.matches:
            line = (
                f"  {m.rank:>4}  {m.tile_id:<24}  {m.score:.4f}  {_fmt(m.lat, 6):>11}  "
                f"{_fmt(m.lon, 6):>11}  {_fmt(m.distance_m, 1):>8}"
            )
            print(line + (f"  {'-' if m.inliers is None else m.inliers:>7}" if extra else ""))
    if errors:
        import statistics

        ms = sum(sum(r.timing_ms.values()) for r in results) / len(results)
        print(
            f"{len(results)} images, {len(errors)} with a known position: median error "
            f"{statistics.median(errors):.1f} m, mean {statistics.fmean(errors):.1f} m; "
            f"{ms:.1f} ms/image ({loc.backend})"
        )
    if skipped:
        print(f"{len(skipped)} unreadable image(s) skipped", file=sys.stderr)
    return status


def _refine_settings(args: argparse.Namespace):
    """(RefineConfig or None, image -> K or None) from the refinement flags."""
    if not args.refine:
        if args.refine_k is not None or args.hfov is not None or args.intrinsics is not None:
            raise DataError("--refine-k, --hfov and --intrinsics need --refine")
        return None, None
    import numpy as np

    from geolink.deploy.refine import RefineConfig
    from geolink.utils.camera import intrinsics

    if args.refine_k is not None and args.refine_k > args.top_k:
        raise DataError(
            f"--refine-k {args.refine_k} verifies more tiles than --top-k {args.top_k} retrieves"
        )
    refine = RefineConfig(top_k=args.top_k if args.refine_k is None else args.refine_k)
    if args.hfov is not None:
        if not 0 < args.hfov < 180:
            raise DataError(f"--hfov must be between 0 and 180 degrees, got {args.hfov}")
        return refine, lambda im: intrinsics(im.shape[1], im.shape[0], args.hfov)
    if args.intrinsics is not None:
        try:
            fx, fy, cx, cy = (float(v) for v in args.intrinsics.split(","))
        except ValueError:
            raise DataError(
                f"--intrinsics must be four numbers FX,FY,CX,CY, got {args.intrinsics!r}"
            ) from None
        if fx <= 0 or fy <= 0:
            raise DataError(f"--intrinsics: focal lengths must be positive, got {fx}, {fy}")
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        return refine, lambda im: K
    return refine, None


def _describe(r) -> str:
    """One phrase on where the estimate comes from."""
    f = r.refinement or {}
    if not f.get("ok"):
        return f"tile centre: {f.get('reason', 'not refined')}"
    text = f"{r.position.replace('_', ' ')} in {f['tile_id']}, {f['inliers']} inliers"
    if f.get("uncertainty_m") is not None:
        text += f", ±{f['uncertainty_m']:.1f} m"
    if f.get("altitude_m") is not None:
        text += f", {f['altitude_m']:.0f} m above ground"
    return text
