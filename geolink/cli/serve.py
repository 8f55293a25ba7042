"""``geolink serve``: HTTP API + upload page for localization (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="HTTP service + web page for localization")
    p.add_argument("--index", required=True, help="index folder from `geolink index`")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", help="checkpoint (default: the one recorded in the index)")
    model.add_argument("--onnx", help="ONNX encoder from `geolink export` (runs on onnxruntime)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--device", default="cpu", help="torch device for --checkpoint")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-mb", type=float, default=16.0, help="upload size limit in MB")
    p.add_argument("--top-k", type=int, default=5, help="default number of tiles returned")


def run(args: argparse.Namespace) -> int:
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # CPU-feature probing chatter
    from geolink.deploy.localizer import Localizer
    from geolink.deploy.serve.app import serve
    from geolink.errors import ConfigError

    # checked before the index and model load: a server that refuses everything is no server
    if not args.max_mb > 0:
        raise ConfigError(f"--max-mb {args.max_mb:g}: the upload limit must be > 0")
    if not 1 <= args.top_k <= 50:
        raise ConfigError(f"--top-k {args.top_k}: must be in 1..50")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be in 0..65535")
    if args.threads < 0:
        raise ConfigError(f"--threads {args.threads}: must be >= 0 (0 = all cores)")
    loc = Localizer.from_paths(
        args.index, args.checkpoint, args.onnx, device=args.device, threads=args.threads
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding to %s: the service has no authentication", args.host)
    print(
        f"serving {len(loc.index)} tiles ({loc.backend}) on http://{args.host}:{args.port}/ "
        f"(API docs: /docs); Ctrl-C to stop"
    )
    serve(loc, args.host, args.port, max_bytes=int(args.max_mb * 2**20), default_top_k=args.top_k)
    return 0
