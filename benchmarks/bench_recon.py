"""Reconstruction speed and quality per CPU backend and worker count on the synthetic benchmark.

    python benchmarks/bench_recon.py --root DEMO_ROOT            # an existing `geolink synth` root
    python benchmarks/bench_recon.py --preset demo --out /tmp/b  # generate it first

For every (backend, workers) it runs ``geolink.recon.pipeline.main`` from scratch on the train
scenes and prints a Markdown table: wall time, seconds per scene (single-scene time inside the
worker), CPU seconds per scene (all threads of its process; independent of other load on the
machine), points per scene after filtering (before FPS), scenes ok / failed / padded. For SfM
backends it also aligns each scene's registered camera centres to the true ones (Sim(3),
Umeyama) and reports the mean centre error relative to the orbit radius, and the share of
scenes whose error is under 5 % ("accurate").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def camera_accuracy(out_dir: Path, manifest: dict) -> list[float]:
    """Per ok scene with camera centres: mean centre error / mean orbit radius after Sim(3)."""
    from geolink.recon.align import umeyama_sim3
    from geolink.recon.depth import find_view

    errors = []
    for key, entry in manifest["scenes"].items():
        cam_file = out_dir / "cameras" / f"{key}.json"
        if entry["status"] != "ok" or not cam_file.is_file():
            continue
        centres = json.loads(cam_file.read_text())
        if len(centres) < 3:
            continue
        src = np.array(list(centres.values()))
        dst = np.array(
            [np.array(find_view(Path(p))[1]["world_from_camera"])[:3, 3] for p in centres]
        )
        s, R, t = umeyama_sim3(src, dst)
        err = np.linalg.norm(s * src @ R.T + t - dst, axis=1).mean()
        errors.append(float(err / np.linalg.norm(dst - dst.mean(0), axis=1).mean()))
    return errors


def run_one(dataset, backend: str, workers: int, out_dir: Path, limit: int | None) -> dict:
    from geolink.recon.pipeline import main, scenes_of

    scenes = scenes_of(dataset, "train")
    if limit:
        scenes = dict(list(scenes.items())[:limit])
    conf = {"backend": backend, "workers": workers, "features": False}
    t0 = time.perf_counter()
    main(conf, scenes, out_dir, overwrite=True)
    wall = time.perf_counter() - t0
    manifest = json.loads((out_dir / "manifest.json").read_text())
    ok = [e for e in manifest["scenes"].values() if e["status"] == "ok"]
    row = {
        "backend": backend,
        "workers": workers,
        "scenes": len(scenes),
        "wall_s": round(wall, 1),
        "s_per_scene_in_worker": round(float(np.mean([e["seconds"] for e in ok])), 2)
        if ok
        else None,
        "wall_s_per_scene": round(wall / len(scenes), 2),
        "cpu_s_per_scene": round(float(np.mean([e.get("cpu_seconds", 0) for e in ok])), 2)
        if ok
        else None,
        "points_mean": round(float(np.mean([e["points_filtered"] for e in ok])), 0) if ok else 0,
        "points_min": int(min((e["points_filtered"] for e in ok), default=0)),
        "ok": len(ok),
        "failed": len(scenes) - len(ok),
        "padded": sum(bool(e.get("padded")) for e in ok),
        "registered_frac": round(
            float(np.mean([e["images_registered"] / e["images_used"] for e in ok])), 3
        )
        if ok
        else 0,
    }
    acc = camera_accuracy(out_dir, manifest)
    if acc:
        row["cam_err_rel_median"] = round(float(np.median(acc)), 4)
        row["accurate_5pct"] = f"{sum(a < 0.05 for a in acc)}/{len(acc)}"
    row["failures"] = {k: e["reason"] for k, e in manifest["scenes"].items() if e["status"] != "ok"}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="existing synthetic root (from `geolink synth`)")
    ap.add_argument("--preset", default="demo", help="synth preset to generate without --root")
    ap.add_argument("--out", default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--backends", default="depth,colmap")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--limit", type=int, help="only the first N train scenes")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()

    from geolink.data import build_dataset

    scratch = Path(args.out or tempfile.mkdtemp(prefix="bench_recon_"))
    root = Path(args.root) if args.root else None
    if root is None:
        from geolink.data.synthetic import generate

        root = generate(scratch / f"synth_{args.preset}", preset=args.preset, seed=0)
    dataset = build_dataset("synthetic", root)
    rows = []
    for backend in args.backends.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            row = run_one(dataset, backend, workers, scratch / f"{backend}_w{workers}", args.limit)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    cols = [
        "backend",
        "workers",
        "scenes",
        "wall_s",
        "wall_s_per_scene",
        "s_per_scene_in_worker",
        "cpu_s_per_scene",
        "points_mean",
        "points_min",
        "ok",
        "failed",
        "padded",
        "registered_frac",
        "cam_err_rel_median",
        "accurate_5pct",
    ]
    print(f"\nroot: {root} | cpus: {os.cpu_count()} | load avg: {os.getloadavg()[0]:.1f}\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    for r in rows:
        for key, reason in list(r["failures"].items())[:5]:
            print(f"failed ({r['backend']}, w{r['workers']}) {key}: {reason}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
