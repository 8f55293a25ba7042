"""``geolink visualize``: the paper's figures as PNG files.

geolink visualize pca -c CKPT [-c CKPT2] [--label A --label B] IMAGE... --out F.png
                      [--weather none --weather fog_rain ...] [--fit joint|per_image]
geolink visualize tsne -c CKPT [-c CKPT2] --dataset synthetic --root ROOT --out F.png
                       [--locations 8] [--max-drone 20] [--weather W]
geolink visualize retrieval --topk-csv topk_drone2satellite.csv [--root ROOT] --out F.png
geolink visualize retrieval -c CKPT --dataset synthetic --root ROOT --out F.png
                            [--direction drone2satellite] [--select wrong] [--k 5] [--queries 8]
geolink visualize curves RUN_WITH_LGA RUN_WITHOUT --label "w/ L_ga" --label "w/o L_ga"
                         --out F.png [--keys nce_dro_pc,nce_sat_pc,loss] [--smoothing 0.6]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geolink.data import DATASETS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "visualize",
        help="PCA maps, t-SNE, retrieval grids, loss curves",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="viz_command", metavar="FIGURE", required=True)

    for add in (_add_pca, _add_tsne, _add_retrieval, _add_curves):
        add(sub)
    return parser


def _add_pca(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pca", help="PCA maps of backbone features next to images (Figure 5)")
    _checkpoints(p)
    p.add_argument("images", nargs="*", type=Path, help="image files (drone images for weather)")
    _dataset(p, required=False)
    p.add_argument(
        "--num-images", type=int, default=4,
        help="without IMAGE arguments: the first N queries of the dataset's set (default 4)",
    )  # fmt: skip
    p.add_argument(
        "--weather", action="append", default=None, metavar="COND",
        help="rows per image under these conditions ('none' = clean); repeatable",
    )  # fmt: skip
    p.add_argument("--fit", choices=("joint", "per_image"), default="joint",
                   help="fit PCA on all images together (default) or per image")  # fmt: skip
    p.add_argument("--quantile", type=float, default=0.01, help="colour clipping quantile")
    p.add_argument("--smooth", action="store_true", help="bilinear upsampling (default nearest)")
    _common(p)


def _add_tsne(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tsne", help="t-SNE of drone/satellite embeddings (Figure 6)")
    _checkpoints(t)
    _dataset(t, required=True)
    t.add_argument("--locations", type=int, default=8, help="number of locations (default 8)")
    t.add_argument("--max-drone", type=int, default=None, help="drone images per location cap")
    t.add_argument("--weather", default=None, help="weather condition on the drone images")
    t.add_argument("--perplexity", type=float, default=30.0)
    t.add_argument("--seed", type=int, default=0, help="location choice and t-SNE seed")
    t.add_argument("--protocol", choices=("paper", "official"), default="paper")
    t.add_argument("--batch-size", type=int, default=32)
    _common(t)


def _add_retrieval(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("retrieval", help="top-k retrieval grid, correct/incorrect framed")
    r.add_argument("--topk-csv", type=Path, help="an evaluator topk_<set>.csv to draw")
    r.add_argument("-c", "--checkpoint", help="or: rank a dataset's set with this checkpoint")
    _dataset(r, required=False)
    r.add_argument("--k", type=int, default=5, help="results per query (default 5)")
    r.add_argument("--queries", type=int, default=8, help="rows (default 8)")
    r.add_argument("--select", choices=("first", "wrong", "correct", "random"), default="first",
                   help="which queries: first, top-1 wrong first, top-1 correct first, random")  # fmt: skip
    r.add_argument("--weather", default=None, help="weather condition on the drone side")
    r.add_argument("--protocol", choices=("paper", "official"), default="paper")
    r.add_argument("--thumb", type=int, default=128, help="thumbnail size in pixels")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--batch-size", type=int, default=32)
    _common(r)


def _add_curves(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("curves", help="training loss curves from run folders (Figure 4)")
    c.add_argument("runs", nargs="+", type=Path, help="run folders (or metrics.jsonl files)")
    c.add_argument("--label", action="append", default=None, help="one per run; repeatable")
    c.add_argument("--keys", default="nce_dro_pc,nce_sat_pc,loss",
                   help="comma-separated logged terms, one panel each")  # fmt: skip
    c.add_argument("--smoothing", type=float, default=0.6, help="EMA weight in [0, 1)")
    c.add_argument("--no-raw", action="store_true", help="hide the unsmoothed curves")
    c.add_argument("--log-y", action="store_true", help="logarithmic loss axis")
    _common(c)


def _checkpoints(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--checkpoint", action="append", required=True,
                   help="GeoLink checkpoint (.safetensors); repeat for side-by-side panels")  # fmt: skip
    p.add_argument("--label", action="append", default=None, help="one per checkpoint")


def _dataset(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--dataset", default="synthetic", choices=DATASETS.names(),
                   help="dataset reader (default synthetic)")  # fmt: skip
    p.add_argument("--root", type=Path, required=required,
                   help="dataset root folder (with --topk-csv: base of relative image paths)")  # fmt: skip
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, e.g. regions=a,b (synthetic)")  # fmt: skip
    p.add_argument("--direction", default="drone2satellite",
                   choices=("drone2satellite", "satellite2drone"))  # fmt: skip
    p.add_argument("--set", default=None, help="retrieval set name (default: the first)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    p.add_argument("--overwrite", action="store_true", help="replace an existing PNG")


def _retrieval_set(args: argparse.Namespace):
    from geolink.cli.data import parse_pairs
    from geolink.data import build_dataset
    from geolink.errors import GeoLinkError

    if args.root is None:
        raise GeoLinkError("--root (a dataset root) is needed here")
    ds = build_dataset(args.dataset, args.root, **parse_pairs(args.option))
    sets = ds.eval_sets(args.direction)
    if args.set:
        chosen = [s for s in sets if s.name == args.set]
        if not chosen:
            names = ", ".join(s.name for s in sets)
            raise GeoLinkError(f"no retrieval set '{args.set}'; available: {names}")
        return chosen[0]
    return sets[0]


def _weathers(values: list[str] | None) -> list[str | None]:
    if not values:
        return [None]
    from geolink.data.weather import check_condition

    return [None if v.lower() in ("none", "clean") else check_condition(v) for v in values]


def run(args: argparse.Namespace) -> int:
    handler = {"pca": _pca, "tsne": _tsne, "retrieval": _retrieval, "curves": _curves}
    existed = args.out.exists() and not args.overwrite
    path = handler[args.viz_command](args)
    print(f"kept existing {path} (--overwrite to redo)" if existed else path)
    return 0


def _pca(args: argparse.Namespace) -> Path:
    from geolink.viz.pca import pca_figure

    images = list(args.images)
    if not images:
        images = list(_retrieval_set(args).queries[: args.num_images])
    return pca_figure(
        images, args.checkpoint, args.out, labels=args.label, weathers=_weathers(args.weather),
        fit=args.fit, quantile=args.quantile, smooth=args.smooth, overwrite=args.overwrite,
    )  # fmt: skip


def _tsne(args: argparse.Namespace) -> Path:
    from geolink.viz.tsne import tsne_from_checkpoints

    if args.direction != "drone2satellite":
        from geolink.errors import GeoLinkError

        raise GeoLinkError("t-SNE draws the drone2satellite set (drone stars, satellite crosses)")
    return tsne_from_checkpoints(
        _retrieval_set(args), args.checkpoint, args.out, labels=args.label,
        n_locations=args.locations, max_drone=args.max_drone,
        weather=_weathers([args.weather] if args.weather else None)[0],
        perplexity=args.perplexity, seed=args.seed, batch_size=args.batch_size,
        protocol=args.protocol, overwrite=args.overwrite,
    )  # fmt: skip


def _retrieval(args: argparse.Namespace) -> Path:
    from geolink.errors import GeoLinkError
    from geolink.viz.retrieval_grid import grid_from_checkpoint, grid_from_csv

    if (args.topk_csv is None) == (args.checkpoint is None):
        raise GeoLinkError("give either --topk-csv FILE or --checkpoint CKPT with --root")
    weather = _weathers([args.weather] if args.weather else None)[0]
    if args.topk_csv is not None:
        # The CSV lists clean image paths; put the weather back on the drone side.
        drone_gallery = "satellite2drone" in (args.topk_csv.name + args.direction)
        return grid_from_csv(
            args.topk_csv, args.out, n_queries=args.queries, k=args.k, select=args.select,
            root=args.root, seed=args.seed, overwrite=args.overwrite, thumb=args.thumb,
            query_weather=None if drone_gallery else weather,
            gallery_weather=weather if drone_gallery else None,
        )  # fmt: skip
    return grid_from_checkpoint(
        args.checkpoint, _retrieval_set(args), args.out, n_queries=args.queries, k=args.k,
        select=args.select, weather=weather,
        protocol=args.protocol, seed=args.seed, batch_size=args.batch_size,
        overwrite=args.overwrite, thumb=args.thumb,
    )  # fmt: skip


def _curves(args: argparse.Namespace) -> Path:
    from geolink.viz.curves import loss_curves

    keys = [k.strip() for k in args.keys.split(",") if k.strip()]
    return loss_curves(
        args.runs, args.out, keys=keys, labels=args.label, smoothing=args.smoothing,
        show_raw=not args.no_raw, log_y=args.log_y, overwrite=args.overwrite,
    )  # fmt: skip
