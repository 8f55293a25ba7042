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
    results = loc.locate_paths(paths, top_k=args.top_k, coords=coords, skipped=skipped)
    status = 1 if skipped else 0
    for path, reason in skipped or []:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return status
    errors = []
    for r in results:
        head = f"{r.query}: {_fmt(r.lat, 6)}, {_fmt(r.lon, 6)}"
        if r.error_m is not None:
            head += f"  (error {r.error_m:.1f} m vs {r.known_source})"
            errors.append(r.error_m)
        print(head)
        print("  rank  tile                      score      lat          lon          dist_m")
        for m in r.matches:
            print(
                f"  {m.rank:>4}  {m.tile_id:<24}  {m.score:.4f}  {_fmt(m.lat, 6):>11}  "
                f"{_fmt(m.lon, 6):>11}  {_fmt(m.distance_m, 1):>8}"
            )
    if errors:
        import statistics

        ms = sum(r.timing_ms["embed"] + r.timing_ms["search"] for r in results) / len(results)
        print(
            f"{len(results)} images, {len(errors)} with a known position: median error "
            f"{statistics.median(errors):.1f} m, mean {statistics.fmean(errors):.1f} m; "
            f"{ms:.1f} ms/image ({loc.backend})"
        )
    if skipped:
        print(f"{len(skipped)} unreadable image(s) skipped", file=sys.stderr)
    return status
