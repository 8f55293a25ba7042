"""``geolink index``: embed geo-referenced satellite tiles into a FAISS index (+ metadata).

Options: the schema (``geolink.deploy.store.IndexConfig``), then ``--preset`` (flat, ivf, hnsw),
then the flags and ``key=value`` overrides; the resolved config is written to OUT/config.yaml.
"""

from __future__ import annotations

import argparse
import logging

from geolink.deploy.store import INDEX_TYPES, STEP
from geolink.errors import GeoLinkError
from geolink.utils.conf import preset_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="embed geo-referenced satellite tiles into a FAISS index")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="GeoLink checkpoint (.safetensors)")
    model.add_argument("--onnx", help="ONNX encoder from `geolink export` (no torch needed)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tiles", help="folder of tile images (id = file stem)")
    src.add_argument("--geotiff", help="a geo-referenced GeoTIFF to cut into tiles")
    p.add_argument("--coords", help="CSV name,lat,lon[,footprint_m] for --tiles (name = tile id)")
    p.add_argument("--footprint-m", type=float, help="ground footprint of every --tiles tile (m)")
    p.add_argument("--tile-size", type=float, help="--geotiff: tile side in metres")
    p.add_argument(
        "--stride", type=float, help="--geotiff: tile step in metres (default: tile size)"
    )
    p.add_argument(
        "--min-valid", type=float, default=0.5, help="--geotiff: drop tiles with less valid data"
    )
    p.add_argument("--out", required=True, help="index folder")
    p.add_argument("--add", action="store_true", help="append these tiles to an existing index")
    p.add_argument("--overwrite", action="store_true", help="rebuild the index from scratch")
    p.add_argument(
        "--preset", choices=preset_names(STEP), help="named index options (geolink/configs/index)"
    )
    p.add_argument(
        "--index-type",
        choices=INDEX_TYPES.names(),
        help="flat = exact (default); ivf / hnsw for large galleries",
    )
    p.add_argument("--nlist", type=int, help="ivf: number of cells (default ~4 sqrt(N))")
    p.add_argument("--nprobe", type=int, help="ivf: cells searched per query (default 16)")
    p.add_argument("--hnsw-m", type=int, help="hnsw: links per node (default 32)")
    p.add_argument("--ef-search", type=int, help="hnsw: search breadth (default 64)")
    p.add_argument("--batch-size", type=int, help="tiles per encoder call (default 16)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--device", default="cpu", help="torch device for --checkpoint (cpu, cuda)")
    p.add_argument("overrides", nargs="*", help="index option overrides key=value (IndexConfig)")


def run(args: argparse.Namespace) -> int:
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # CPU-feature probing chatter
    from geolink.cli.data import step_overrides
    from geolink.deploy import store, tiles
    from geolink.deploy.encoders import load_encoder

    flags = {
        "index_type": args.index_type,
        "batch_size": args.batch_size,
        "params.nlist": args.nlist,
        "params.nprobe": args.nprobe,
        "params.m": args.hnsw_m,
        "params.ef_search": args.ef_search,
    }
    over = step_overrides(flags, args.overrides, "index option")
    conf = store.resolve(over, args.preset)  # a bad option fails before any tile is read
    if args.geotiff:
        if args.tile_size is None:
            raise GeoLinkError("--geotiff needs --tile-size (metres)")
        if args.coords:
            raise GeoLinkError("--coords is for --tiles; a GeoTIFF carries its own geotransform")
        tile_list = tiles.tiles_from_geotiff(
            args.geotiff, args.tile_size, args.stride, args.min_valid
        )
    else:
        if args.tile_size is not None or args.stride is not None:
            raise GeoLinkError("--tile-size/--stride are for --geotiff")
        tile_list = tiles.tiles_from_folder(args.tiles, args.coords, args.footprint_m)
    encoder = load_encoder(
        args.checkpoint, args.onnx, args.device, batch_size=conf.batch_size, threads=args.threads
    )
    out = store.main(conf, tile_list, encoder, args.out, add=args.add, overwrite=args.overwrite)
    idx = store.TileIndex.load(out)
    m = idx.model
    print(
        f"index {out}: {len(idx)} tiles, {idx.meta['index']['type']}, {m['backbone']} @ "
        f"{m['img_size']}px -> {m['out_dim']}-d, checkpoint {m['checkpoint_sha256'][:12]}"
    )
    return 0
