"""``geolink complexity``: parameters and MACs of the 2D inference path (Table 6)."""

from __future__ import annotations

import argparse
import json

PAPER_TABLE6 = {
    "Sample4Geo": (87.51, 72.60),
    "DAC": (87.51, 80.22),
    "CV-Cities": (90.50, 91.67),
    "GeoLink": (90.50, 91.72),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("complexity", help="parameters and MACs of the 2D inference path (Table 6)")
    p.add_argument("--preset", default="paper", help="config preset (default: paper)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    from geolink.complexity import count_complexity
    from geolink.config import load_config
    from geolink.models.image_encoder import ImageEncoder

    cfg = load_config(args.preset, args.overrides)
    image_cfg = cfg.model.image
    image_cfg.pretrained = None  # counting needs no weights
    enc = ImageEncoder(image_cfg)
    res = count_complexity(enc)
    res.update(preset=args.preset, backbone=image_cfg.backbone, out_dim=enc.out_dim)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    g, m = 1e9, 1e6
    print(
        f"2D inference path of preset '{args.preset}': {image_cfg.backbone} @ "
        f"{image_cfg.img_size}px + MixVPR -> {enc.out_dim}-d, batch 1"
    )
    print()
    print("| convention | params (M) | MACs (G) |")
    print("|---|---|---|")
    if res["thop"]:
        print(
            f"| thop (paper's Table 6 convention) | {res['thop']['params'] / m:.2f} | "
            f"{res['thop']['macs'] / g:.2f} |"
        )
    print(
        f"| all parameters / FlopCounter, attention not counted | {res['params_all'] / m:.2f} | "
        f"{res['macs_no_attention'] / g:.2f} |"
    )
    print(
        f"| all parameters / FlopCounter, attention counted | {res['params_all'] / m:.2f} | "
        f"{res['macs_with_attention'] / g:.2f} |"
    )
    print(f"| trainable parameters | {res['params_trainable'] / m:.2f} | |")
    print()
    print("Paper, Table 6 (params M / 'FLOPs' G, which are thop MACs):")
    for k, (p, f) in PAPER_TABLE6.items():
        print(f"  {k:<11} {p:6.2f} M  {f:6.2f} G")
    if res["thop"]:
        dp = 100 * (res["thop"]["params"] / m / 90.50 - 1)
        df = 100 * (res["thop"]["macs"] / g / 91.72 - 1)
        print(f"GeoLink vs this count (thop): params {dp:+.2f} %, MACs {df:+.2f} %")
    else:
        print("thop is not installed (pip install 'geolink[complexity]'): no paper-convention row")
    print(
        "How counted: thop.profile counts leaf Conv/Linear/Norm modules only (no pos_embed, "
        "tokens, LayerScale; no attention matmuls); FlopCounterMode MACs = FLOPs/2."
    )
    return 0
