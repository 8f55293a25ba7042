"""PNG preview of reconstructed clouds: a top view and an oblique view per scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from geolink.errors import DataError
from geolink.recon.pointcloud import read_ply
from geolink.utils.io import atomic_path, inside


def _pick_scenes(recon_dir: Path, scenes: list[str] | None, max_scenes: int) -> dict[str, Path]:
    manifest_path = recon_dir / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path}: not found; is {recon_dir} a reconstruction folder?")
    entries = json.loads(manifest_path.read_text())["scenes"]
    ok = {
        k: inside(recon_dir, v["ply"], f"{recon_dir}/manifest.json scene {k}")
        for k, v in sorted(entries.items())
        if v.get("status") == "ok"
    }
    if scenes:
        missing = [s for s in scenes if s not in ok]
        if missing:
            raise DataError(f"{recon_dir}: no ok scene(s) {', '.join(missing)}")
        return {s: ok[s] for s in scenes}
    if not ok:
        raise DataError(f"{manifest_path}: no scene was reconstructed successfully")
    keys = list(ok)
    step = max(len(keys) // max_scenes, 1)  # spread the picks over the regions/locations
    return {k: ok[k] for k in keys[::step][:max_scenes]}


def render_preview(
    recon_dir: str | Path,
    out_png: str | Path,
    scenes: list[str] | None = None,
    max_scenes: int = 4,
    point_size: float = 2.0,
) -> Path:
    """Draw ``max_scenes`` clouds (or ``scenes``) as rows of [top view, oblique view].

    Points are coloured by their RGB when the PLY has colours, else by height (z).
    Returns the PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recon_dir = Path(recon_dir)
    picked = _pick_scenes(recon_dir, scenes, max_scenes)
    fig = plt.figure(figsize=(6.4, 3.1 * len(picked)), dpi=100)
    for row, (key, ply) in enumerate(picked.items()):
        cloud = read_ply(ply)
        xyz = cloud.xyz
        colors = cloud.rgb / 255.0 if cloud.rgb is not None else None
        for col, (elev, azim, title) in enumerate(((90, -90, "top"), (30, -60, "oblique"))):
            ax = fig.add_subplot(len(picked), 2, 2 * row + col + 1, projection="3d")
            kw = {"c": colors} if colors is not None else {"c": xyz[:, 2], "cmap": "viridis"}
            ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], s=point_size, linewidths=0, **kw)
            ax.view_init(elev=elev, azim=azim)
            lim = float(np.abs(xyz).max()) or 1.0
            ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_zlim(-lim, lim)
            ax.set_box_aspect((1, 1, 1))
            ax.set_axis_off()
            ax.set_title(f"{key} ({title}, {len(xyz)} pts)", fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return Path(out_png)
