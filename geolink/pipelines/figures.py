"""The demo's figures: each is optional (a figure that fails is logged and left out)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def demo_figures(
    out: Path, data_dir: Path, recon_dir: Path, runs: Path, target: str, seed: int, ckpt: str
) -> dict[str, str]:
    """Pictures for the report; a figure that fails is logged and left out, never fatal."""
    fig = out / "figures"
    fig.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}

    def attempt(name: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
            made[name] = str(fig / f"{name}.png")
        except Exception as e:  # noqa: BLE001 - a picture must not sink the demo
            logger.warning("demo: figure '%s' failed: %s", name, e)

    attempt("contact_sheet", lambda: _contact_sheet(data_dir, fig / "contact_sheet.png"))
    attempt("point_clouds", lambda: _point_clouds(recon_dir, fig / "point_clouds.png"))
    attempt("loss_curves", lambda: _loss_curves(runs, fig / "loss_curves.png"))
    attempt(
        "tsne",
        lambda: _tsne(runs, data_dir, target, fig / "tsne.png", seed, ckpt),
    )
    attempt(
        "retrieval_geolink",
        lambda: _retrieval(runs / "geolink", target, fig / "retrieval_geolink.png"),
    )
    return made


def _contact_sheet(data_dir: Path, png: Path) -> None:
    from geolink.data.synthetic.contact_sheet import contact_sheet

    contact_sheet(data_dir, png, locations_per_region=1, drone_views=3, tile=160)


def _point_clouds(recon_dir: Path, png: Path) -> None:
    from geolink.recon.preview import render_preview

    render_preview(recon_dir, png, max_scenes=3)


def _loss_curves(runs: Path, png: Path) -> None:
    from geolink.viz.curves import loss_curves

    loss_curves(
        [runs / "baseline", runs / "geolink"],
        png,
        keys=["loss", "nce_dro_sat", "nce_dro_pc", "nce_sat_pc", "L_ga", "L_rd"],
        labels=["baseline", "GeoLink"],
        overwrite=True,
    )


def _tsne(runs: Path, data_dir: Path, region: str, png: Path, seed: int, ckpt: str) -> None:
    from geolink.checkpoint import load_image_encoder
    from geolink.data import build_dataset
    from geolink.viz.tsne import select_locations, tsne_figure, tsne_panel

    rs = build_dataset("synthetic", data_dir, regions=[region]).eval_sets("drone2satellite")[0]
    locs = select_locations(rs.query_labels, rs.gallery_labels, 8, seed=seed)
    panels = []
    for kind, title in (("baseline", "2D baseline"), ("geolink", "GeoLink")):
        enc, _ = load_image_encoder(runs / kind / "checkpoints" / f"{ckpt}.safetensors")
        panels.append(tsne_panel(enc, rs, locs, f"{title} ({region})", perplexity=10.0, seed=seed))
    tsne_figure(panels, png, overwrite=True)


def _retrieval(run: Path, region: str, png: Path) -> None:
    from geolink.viz.retrieval_grid import read_topk_csv, retrieval_grid, select_rows

    csvs = sorted((run / "eval" / region).glob("topk_drone2satellite*.csv"))
    clean = [c for c in csvs if c.stem == "topk_drone2satellite"] or csvs
    rows = read_topk_csv(clean[0])
    retrieval_grid(select_rows(rows, 6, select="random", seed=0), png, k=5, overwrite=True)
