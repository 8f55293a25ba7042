"""``geolink reconstruct``: one point cloud per scene from its drone images (offline, cached).

geolink reconstruct --dataset synthetic --root DIR [--preset NAME] [--backend colmap|depth|vggt]
                    [--out OUT] [--split train] [--groups K] [--workers W] [--num-points N]
                    [-b key=value ...] [--overwrite] [--retry-failed] [--no-features]
                    [--preview PNG] [key=value ...]
geolink reconstruct --import-colmap SRC --out OUT     (existing points3D.txt / .bin models)

Options come from the step's schema (geolink.recon.config.ReconConfig), then the preset
(geolink/configs/reconstruct: colmap, depth, vggt, released), then the flags and key=value
overrides. The resolved config is written to OUT/config.yaml; resuming into OUT with another
one is refused (--overwrite starts over).

Default OUT: ROOT/recon/<backend> (``<backend>_g<K>`` with --groups K > 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geolink.data import DATASETS
from geolink.recon.base import BACKENDS
from geolink.recon.config import STEP, GroupMode
from geolink.utils.conf import preset_names


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "reconstruct",
        help="offline 3D point clouds per scene from drone images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", choices=DATASETS.names(), help="dataset reader")
    p.add_argument("--root", help="dataset root folder")
    p.add_argument("--preset", choices=preset_names(STEP), help="named options (default: none)")
    p.add_argument(
        "--backend", choices=BACKENDS.names(),
        help="colmap (CPU, default), depth (rendered depth maps), vggt (GPU)",
    )  # fmt: skip
    p.add_argument("--out", help="output folder (default: ROOT/recon/<backend>)")
    p.add_argument("--split", help="dataset split whose scenes to build (default: train)")
    p.add_argument("--groups", type=int, help="scenes per location (default 1; released code: 3)")
    p.add_argument("--group-mode", choices=[m.value for m in GroupMode])
    p.add_argument("--workers", type=int, help="parallel worker processes (default 1)")
    p.add_argument("--num-points", type=int, help="points per cloud after FPS (default 1024)")
    p.add_argument(
        "-b",
        "--backend-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend option, e.g. max_num_features=2048 (colmap) or model=/path (vggt)",
    )
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option, e.g. regions=a,b (synthetic)",
    )
    p.add_argument("--scenes", nargs="+", help="only these scene keys")
    p.add_argument("--overwrite", action="store_true", help="redo every scene")
    p.add_argument("--retry-failed", action="store_true", help="redo scenes that failed before")
    p.add_argument("--keep-work", action="store_true", help="keep per-scene scratch folders")
    p.add_argument("--no-features", action="store_true", help="skip the Point-NN feature cache")
    p.add_argument("--preview", help="also write a PNG preview of a few clouds here")
    p.add_argument("--import-colmap", metavar="SRC", help="post-process existing COLMAP models")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("overrides", nargs="*", help="option overrides key=value (ReconConfig)")
    return p


def run(args: argparse.Namespace) -> int:
    from geolink.cli.data import parse_pairs, step_overrides
    from geolink.errors import ConfigError
    from geolink.recon import pipeline

    flags = {
        "backend": args.backend,
        "split": args.split,
        "groups": args.groups,
        "group_mode": args.group_mode,
        "workers": args.workers,
        "num_points": args.num_points,
        "scenes": args.scenes,
        "retry_failed": args.retry_failed or None,
        "keep_work": args.keep_work or None,
        "features": False if args.no_features else None,
        **{
            f"backend_conf.{k}": v
            for k, v in parse_pairs(args.backend_opt, "backend option").items()
        },
    }
    over = step_overrides(flags, args.overrides, "reconstruct option")
    conf = pipeline.resolve(over, args.preset)
    if args.import_colmap:
        if not args.out:
            raise ConfigError("--import-colmap needs --out")
        from geolink.recon.colmap_import import import_colmap

        manifest_path = import_colmap(conf, args.import_colmap, args.out, args.overwrite)
    else:
        if not args.dataset or not args.root:
            raise ConfigError("give --dataset and --root (or --import-colmap SRC --out OUT)")
        from geolink.data import build_dataset

        dataset = build_dataset(args.dataset, args.root, **parse_pairs(args.option))
        suffix = f"_g{conf.groups}" if conf.groups > 1 else ""
        out = Path(args.out) if args.out else Path(args.root) / "recon" / f"{conf.backend}{suffix}"
        manifest_path = pipeline.main(conf, dataset, out, overwrite=args.overwrite)
    manifest = json.loads(manifest_path.read_text())
    if args.preview and manifest["summary"]["ok"]:
        from geolink.recon.preview import render_preview

        render_preview(manifest_path.parent, args.preview)
    if args.json:
        print(json.dumps({"manifest": str(manifest_path), **manifest["summary"]}, indent=2))
    else:
        _print_summary(manifest, manifest_path)
    failed = manifest["summary"]["failed"]
    if failed:  # the others are done and kept; --retry-failed redoes these
        print(f"geolink reconstruct: {failed} scene(s) failed", file=sys.stderr)
    return 1 if failed or not manifest["summary"]["ok"] else 0


def _print_summary(manifest: dict, manifest_path: Path) -> None:
    s = manifest["summary"]
    print(
        f"backend {manifest['backend']}: {s['ok']} ok, {s['failed']} failed of {s['scenes']} "
        f"scenes; {s['seconds_per_scene']:.2f} s per scene inside its worker; "
        f"mean {s['points_filtered_mean']:.0f} "
        f"points per scene before sampling ({s['padded']} padded to the target count)"
    )
    failed = [(k, v.get("reason")) for k, v in manifest["scenes"].items() if v["status"] != "ok"]
    for key, reason in failed[:10]:
        print(f"  failed {key}: {reason}")
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more (see the manifest)")
    print(f"manifest: {manifest_path}")
    feats = manifest_path.parent / "point_features.safetensors"
    if feats.is_file():
        print(f"Point-NN features: {feats}")
