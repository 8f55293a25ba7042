"""``geolink demo``: the synthetic benchmark end to end, ending in a report.

Stages (each resumable: a finished stage is recorded in ``stages.json`` and skipped on re-run):
synthesize regions -> reconstruct point clouds of the training region with COLMAP -> cache
Point-NN features -> train the 2D baseline and GeoLink on one region -> evaluate both zero-shot
on the other regions (both directions) and under the paper's four weather conditions -> figures
-> ``report.md`` (+ ``report.html``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from geolink.errors import ConfigError
from geolink.utils import conf
from geolink.utils.io import atomic_write_json

logger = logging.getLogger(__name__)


STEP = "demo"  # presets in geolink/configs/demo/: full (the default), quick


class CheckpointChoice(conf.Choice):
    best = "best"  # the best epoch on a validation split held out from the training locations
    last = "last"


@dataclass
class DemoConfig:
    synth_preset: str = "demo"
    synth_overrides: dict[str, Any] = field(default_factory=dict)  # SynthParams options
    seed: int = 0
    train_region: str = ""  # empty = the first region of the benchmark
    # depth fusion of the rendered depth maps (seconds for 200 scenes); colmap: SfM from the
    # drone images alone (about 2.5 s a scene on 2 cores)
    recon_backend: str = "depth"
    recon_workers: int = 2
    geolink_preset: str = "demo"
    baseline_preset: str = "demo_baseline"
    # a partial training config (nested keys) applied to both models' presets
    train_overrides: dict[str, Any] = field(default_factory=dict)
    conditions: tuple[str, ...] = ("fog_rain", "fog_snow", "rain_snow", "wind")
    # target regions evaluated under weather (the first target, the near one, by default: each
    # condition costs a full pass over its queries); empty = every target
    weather_regions: tuple[str, ...] | None = None
    # evaluate the encoder before training ("pretrained features, no training")
    reference: bool = True
    # which checkpoint is evaluated: best (the best epoch on a validation split held out from
    # the training locations; no test data is read) | last
    checkpoint: CheckpointChoice = CheckpointChoice.best
    eval_batch_size: int = 64

    RUNTIME: ClassVar[tuple[str, ...]] = ("recon_workers", "eval_batch_size")


OPEN_KEYS = ("synth_overrides", "train_overrides")


def resolve(
    preset: str | None = "full", overrides: Mapping[str, Any] | Sequence[str] | None = None
) -> DemoConfig:
    """The demo's config: ``preset`` (``geolink/configs/demo``), then ``overrides``, strictly;
    the presets and overrides it names for the other steps are checked now, not mid-run."""
    cfg = conf.load(DemoConfig, STEP, preset, overrides=overrides or {}, open_keys=OPEN_KEYS)
    return check(cfg)


def check(cfg: DemoConfig) -> DemoConfig:
    from geolink.data.synthetic.presets import resolve_params
    from geolink.data.weather import CONDITIONS
    from geolink.recon.base import BACKENDS

    resolve_params(cfg.synth_preset, **cfg.synth_overrides)
    for preset in (cfg.geolink_preset, cfg.baseline_preset):
        conf.preset_layers("train", preset)  # an unknown preset lists the known ones
    if cfg.recon_backend not in BACKENDS:
        raise ConfigError(
            f"demo recon_backend '{cfg.recon_backend}'; available: {', '.join(BACKENDS.names())}"
        )
    bad = [c for c in cfg.conditions if c not in CONDITIONS]
    if bad:
        raise ConfigError(f"unknown weather condition(s) {bad}; available: {', '.join(CONDITIONS)}")
    return cfg


class Stages:
    """Runs named stages once; records status and seconds in ``stages.json``."""

    def __init__(self, out: Path):
        self.path = out / "stages.json"
        self.state: dict[str, Any] = (
            json.loads(self.path.read_text()) if self.path.is_file() else {}
        )

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.state.get(name, {}).get("status") == "done":
            logger.info(
                "demo: stage '%s' already done (%.0f s), skipping",
                name,
                self.state[name]["seconds"],
            )
            return self.state[name].get("result")
        logger.info("demo: stage '%s' ...", name)
        t0 = time.perf_counter()
        result = fn()
        entry = {"status": "done", "seconds": time.perf_counter() - t0, "result": result}
        # read-modify-write under a lock, so that processes sharing the folder (a study split
        # into shards) keep each other's records
        fd = os.open(self.path.parent, os.O_RDONLY)  # lock the folder: no lock file left over
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.refresh()
            self.state[name] = entry
            atomic_write_json(self.path, self.state)
        finally:
            os.close(fd)  # releases the lock
        return result

    def refresh(self) -> None:
        """Re-read the records (another process may have finished stages)."""
        if self.path.is_file():
            self.state = json.loads(self.path.read_text())

    def done(self, name: str) -> bool:
        return self.state.get(name, {}).get("status") == "done"

    def seconds(self) -> dict[str, float]:
        return {k: v["seconds"] for k, v in self.state.items() if v.get("status") == "done"}


def benchmark_regions(data_dir: Path) -> list[str]:
    return list(json.loads((data_dir / "synth.json").read_text())["regions"])


def run_demo(out: str | Path, quick: bool = False, cfg: DemoConfig | None = None) -> Path:
    """Run (or resume) the demo into ``out``; returns the path of ``report.md``. The resolved
    config is written to ``out/config.yaml``; resuming with another one is refused."""
    cfg = check(cfg) if cfg is not None else resolve("quick" if quick else "full")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    conf.record(out, cfg, STEP, hint="use another --out or delete the folder")
    stages = Stages(out)
    data_dir, recon_dir, runs = out / "data", out / "recon", out / "runs"

    stages.run("synthesize", lambda: str(synthesize(cfg, data_dir)))
    regions = benchmark_regions(data_dir)
    train_region = cfg.train_region or regions[0]
    targets = [r for r in regions if r != train_region]
    stages.run("reconstruct", lambda: reconstruct_region(cfg, data_dir, train_region, recon_dir))
    if cfg.reference:
        stages.run(
            "reference",
            lambda: evaluate_untrained(cfg, data_dir, runs / "untrained", [train_region, *targets]),
        )
    for kind in ("baseline", "geolink"):
        stages.run(
            f"train_{kind}",
            lambda kind=kind: str(
                _train(cfg, kind, data_dir, train_region, recon_dir, runs / kind)
            ),
        )
    weather = weather_regions(cfg, targets)
    for kind in ("baseline", "geolink"):
        ckpt = runs / kind / "checkpoints" / f"{cfg.checkpoint}.safetensors"
        stages.run(
            f"evaluate_{kind}",
            lambda kind=kind, ckpt=ckpt: evaluate_checkpoint(
                cfg, ckpt, runs / kind, data_dir, [train_region, *targets], weather
            ),
        )
    stages.run("figures", lambda: _figures(cfg, out, data_dir, recon_dir, runs, targets))
    from geolink.report import write_report

    return write_report(out, cfg, train_region, targets, stages.seconds())


def weather_regions(cfg: DemoConfig, targets: list[str]) -> list[str]:
    if not cfg.conditions:
        return []
    if cfg.weather_regions is None:
        return targets[:1]
    return [t for t in targets if t in cfg.weather_regions] if cfg.weather_regions else targets


def synthesize(cfg: DemoConfig, data_dir: Path) -> Path:
    from geolink.data.synthetic import generate

    return generate(data_dir, preset=cfg.synth_preset, seed=cfg.seed, **cfg.synth_overrides)


def reconstruct_region(cfg: DemoConfig, data_dir: Path, region: str, recon_dir: Path) -> dict:
    from geolink.config import load_config
    from geolink.data import build_dataset
    from geolink.recon.pipeline import main as reconstruct

    ds = build_dataset("synthetic", data_dir, regions=[region])
    # clouds of the size the 3D model is configured for (training refuses any other)
    point_over = {"model": {"point": cfg.train_overrides.get("model", {}).get("point", {})}}
    num_points = load_config(cfg.geolink_preset, point_over).model.point.num_points
    conf = {"backend": cfg.recon_backend, "workers": cfg.recon_workers, "num_points": num_points}
    manifest = json.loads(reconstruct(conf, ds, recon_dir).read_text())
    return manifest.get("summary", {})


def _train(cfg: DemoConfig, kind: str, data_dir: Path, region: str, recon: Path, run: Path) -> Path:
    from geolink.config import load_config
    from geolink.train.trainer import train

    preset = cfg.geolink_preset if kind == "geolink" else cfg.baseline_preset
    more = {"data.points": str(recon)} if kind == "geolink" else {"model.point.enabled": False}
    over = [train_overrides(cfg, data_dir, region, run.parent), more]
    resume = (run / "checkpoints" / "trainer_state.pt").is_file()
    return train(load_config(preset, over), run, resume=resume)


def train_overrides(cfg: DemoConfig, data_dir: Path, region: str, runs: Path) -> dict[str, Any]:
    """The partial training config every demo model shares (the report prints the same)."""
    shared = {
        "data": {"dataset": "synthetic", "root": str(data_dir), "options": {"regions": [region]}},
        # both models start from the same frozen trunk: its activations are computed once
        "train": {"seed": cfg.seed, "frozen_cache_dir": str(runs / "frozen_cache")},
    }
    return conf.merged(shared, cfg.train_overrides)


def evaluate_untrained(cfg: DemoConfig, data_dir: Path, run: Path, regions: list[str]) -> dict:
    """The baseline's encoder as training starts (pretrained backbone, freshly initialised
    MixVPR, the same seed), saved as a checkpoint and evaluated like the trained models."""
    from geolink.checkpoint import save_model
    from geolink.config import load_config, to_yaml
    from geolink.models.geolink import GeoLink
    from geolink.train.trainer import seed_everything

    over = train_overrides(cfg, data_dir, regions[0], run.parent)
    tc = load_config(cfg.baseline_preset, [over, {"model.point.enabled": False}])
    seed_everything(tc.train.seed)
    model = GeoLink(tc.model, tc.loss)
    ckpt = save_model(
        model, run / "checkpoints" / "untrained.safetensors", to_yaml(tc), {"epoch": 0}
    )
    return evaluate_checkpoint(cfg, ckpt, run, data_dir, regions, weather=[])


def evaluate_checkpoint(
    cfg: DemoConfig, ckpt: Path, run: Path, data_dir: Path, regions: list[str], weather: list[str]
) -> dict:
    from geolink.checkpoint import load_image_encoder
    from geolink.data import build_dataset
    from geolink.evaluate.evaluator import evaluate

    encoder, meta = load_image_encoder(ckpt)
    summary = {}
    for region in regions:
        ds = build_dataset("synthetic", data_dir, regions=[region])
        common = dict(
            out_dir=run / "eval" / region,
            dataset_name=region,
            model_key=meta["sha256"],
            cache_dir=run / "eval" / "cache",
            # the untrained, baseline and GeoLink encoders share their frozen trunk: its
            # activations of the test images are computed once for all three
            trunk_cache_dir=run.parent / "trunk_cache",
        )
        clean = {"direction": "both", "batch_size": cfg.eval_batch_size}
        res = evaluate(encoder, ds, clean, **common)
        # Weather on cross-region targets only (Table 4 is a cross-area setting).
        if region in weather and cfg.conditions:
            conds = ["clean", *cfg.conditions]
            with_weather = {**clean, "direction": "drone2satellite", "conditions": conds}
            res = evaluate(encoder, ds, with_weather, **common)
        summary[region] = res["metrics_path"]
    return summary


def _figures(
    cfg: DemoConfig, out: Path, data_dir: Path, recon_dir: Path, runs: Path, targets: list[str]
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
        lambda: _tsne(runs, data_dir, targets[0], fig / "tsne.png", cfg.seed, cfg.checkpoint),
    )
    attempt(
        "retrieval_geolink",
        lambda: _retrieval(runs / "geolink", targets[0], fig / "retrieval_geolink.png"),
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
