"""``geolink export``: the 2D encoder as ONNX, with a parity check against PyTorch."""

from __future__ import annotations

import argparse
import sys

from geolink.errors import GeoLinkError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the 2D encoder (ONNX)")
    p.add_argument("--checkpoint", required=True, help="GeoLink checkpoint (.safetensors)")
    p.add_argument("--format", default="onnx", help="export format (onnx)")
    p.add_argument("--out", required=True, help="output file (.onnx)")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument(
        "--dynamo", action="store_true", help="torch.export-based exporter (needs onnxscript)"
    )
    p.add_argument(
        "--tolerance", type=float, default=1e-4, help="max abs diff allowed by the parity check"
    )
    p.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace) -> int:
    from geolink.deploy.export import FORMATS, export_onnx, parity_check

    if args.format not in FORMATS:
        raise GeoLinkError(
            f"unknown export format '{args.format}'; available: {', '.join(FORMATS)}"
        )
    out = export_onnx(
        args.checkpoint, args.out, opset=args.opset, dynamo=args.dynamo, overwrite=args.overwrite
    )
    par = parity_check(args.checkpoint, out)
    ok = par["finite"] and par["max_abs_diff"] <= args.tolerance
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB, dynamic batch axis)")
    print(
        f"parity vs PyTorch (batch {', '.join(map(str, par['batch_sizes']))}): max abs diff "
        f"{par['max_abs_diff']:.2e}, min cosine {par['min_cosine']:.7f} -> "
        f"{'OK' if ok else 'FAILED'} (tolerance {args.tolerance:g})"
    )
    if not par["finite"]:
        print("the model produces NaN/Inf embeddings: not a usable export", file=sys.stderr)
    return 0 if ok else 1
