"""Loss curves from run folders' ``metrics.jsonl`` (the paper's Figure 4).

Figure 4 compares the InfoNCE losses between the 3D view and the drone view (``nce_dro_pc``)
and between the 3D view and the satellite view (``nce_sat_pc``) of a run with L_ga and one
without. Any logged term can be drawn (``loss`` is the total). One panel per term, one line per
run; the smoothed curve (TensorBoard-style debiased exponential moving average) is drawn over
the raw values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geolink.errors import DataError, GeoLinkError
from geolink.viz.common import check_out, new_figure, save_figure

log = logging.getLogger(__name__)

FIGURE4_KEYS = ("nce_dro_pc", "nce_sat_pc")
DEFAULT_KEYS = (*FIGURE4_KEYS, "loss")
TITLES = {
    "loss": "total loss",
    "nce_dro_sat": "InfoNCE drone-satellite",
    "nce_dro_pc": "InfoNCE 3D-drone",
    "nce_sat_pc": "InfoNCE 3D-satellite",
}


def metrics_file(run: str | Path) -> Path:
    """``run`` may be a run folder or its ``metrics.jsonl``."""
    run = Path(run)
    path = run / "metrics.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise DataError(f"no metrics file: {path} (expected a run folder holding metrics.jsonl)")
    return path


def read_train_metrics(run: str | Path) -> list[dict]:
    """The ``{"kind": "train", ...}`` records of a run, in file order.

    A truncated last line (a run killed while writing) is skipped with a warning; a malformed
    line elsewhere is an error naming it.
    """
    path = metrics_file(run)
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):
                log.warning("%s: skipping truncated last line %d", path, n)
                continue
            raise DataError(f"{path} line {n} is not valid JSON: {e.msg}") from None
        if isinstance(rec, dict) and rec.get("kind") == "train":
            rows.append(rec)
    return rows


def series(rows: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` over the rows that have it, sorted by step.

    Rows without a ``step`` use their position. When a step repeats (a resumed run re-logging
    it) the last record wins.
    """
    by_step: dict[float, float] = {}
    for i, r in enumerate(rows):
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            by_step[float(r.get("step", i))] = float(v)
    steps = np.array(sorted(by_step), dtype=np.float64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def ema_smooth(values: Sequence[float] | np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing), weight in [0, 1).

    s_t = weight * s_{t-1} + (1 - weight) * x_t with s_0 = 0, reported as s_t / (1 - weight^t);
    ``weight=0`` returns the values unchanged. Non-finite values are carried over (not mixed in).
    """
    if not 0.0 <= weight < 1.0:
        raise GeoLinkError(f"smoothing weight must be in [0, 1), got {weight}")
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    acc, n = 0.0, 0
    for i, v in enumerate(x):
        if not np.isfinite(v):
            out[i] = v
            continue
        n += 1
        acc = weight * acc + (1.0 - weight) * v
        out[i] = acc / (1.0 - weight**n)
    return out


def loss_curves(
    runs: Sequence[str | Path],
    out: str | Path,
    keys: Sequence[str] = DEFAULT_KEYS,
    labels: Sequence[str] | None = None,
    smoothing: float = 0.6,
    show_raw: bool = True,
    log_y: bool = False,
    cell_px: tuple[int, int] = (420, 340),
    dpi: int = 100,
    overwrite: bool = False,
) -> Path:
    """One panel per key, one line per run (e.g. ``with L_ga`` vs ``without L_ga``).

    Keys that no run logged are left out with a warning; if none is left, the error lists the
    keys the runs do have. PNG size: ``n_panels * cell_px[0]`` x ``cell_px[1]``.
    """
    target = check_out(out, overwrite)
    if target is None:
        return Path(out)
    if not runs:
        raise GeoLinkError("loss_curves needs at least one run folder")
    labels = list(labels) if labels else [_run_name(r) for r in runs]
    if len(labels) != len(runs):
        raise GeoLinkError(f"{len(labels)} labels for {len(runs)} runs")
    data = [read_train_metrics(r) for r in runs]
    present = [k for k in keys if any(series(rows, k)[0].size for rows in data)]
    for k in set(keys) - set(present):
        log.warning("no run logged '%s'; its panel is left out", k)
    if not present:
        have = sorted({k for rows in data for r in rows for k, v in r.items() if _is_number(v)})
        raise DataError(
            f"none of {list(keys)} is logged in {[str(r) for r in runs]}; available: {have}"
        )
    w, h = cell_px
    fig = new_figure(len(present) * w / dpi, h / dpi)
    colours = [f"C{i}" for i in range(len(runs))]
    for i, key in enumerate(present):
        ax = fig.add_subplot(1, len(present), i + 1)
        for rows, label, colour in zip(data, labels, colours, strict=True):
            steps, values = series(rows, key)
            if not steps.size:
                continue
            if show_raw and smoothing > 0:
                ax.plot(steps, values, color=colour, alpha=0.25, lw=0.8)
            ax.plot(steps, ema_smooth(values, smoothing), color=colour, lw=1.6, label=label)
        ax.set_title(TITLES.get(key, key), fontsize=10)
        ax.set_xlabel("step")
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, target, dpi=dpi)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _run_name(run: str | Path) -> str:
    p = Path(run)
    return p.parent.name if p.name == "metrics.jsonl" else p.name
