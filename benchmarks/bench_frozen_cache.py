"""Training steps/s and peak memory with and without the frozen-trunk cache (real data, real
loader, real optimizer step; the cache's one-off build time is reported on its own).

    python benchmarks/bench_frozen_cache.py --root DATA [--region campus] [--preset demo_baseline]
        [--steps 20] [--workers 2]

DATA is a synthetic benchmark (``geolink synth``); each mode runs in its own subprocess so peak
RSS is per mode. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

MODES = {
    # the preset's encoder and batch, Sample4Geo augmentation, every image through the backbone
    "uncached, augment=full": ["train.frozen_cache=false", "train.augment=full"],
    "uncached, augment=geometric": ["train.frozen_cache=false", "train.augment=geometric"],
    "frozen-trunk cache": ["train.frozen_cache=true", "train.augment=geometric"],
}


def measure(mode: str, a: argparse.Namespace) -> dict:
    import resource

    import torch
    from torch.utils.data import DataLoader

    from geolink.config import load_config
    from geolink.train.trainer import Trainer

    over = [
        "data.dataset=synthetic",
        f"data.root={a.root}",
        f"data.options.regions=[{a.region}]",
        f"data.num_workers={a.workers}",
        "train.eval_every=0",
        *MODES[mode],
    ]
    if a.points:
        over.append(f"data.points={a.points}")
    else:
        over.append("model.point.enabled=false")
    cfg = load_config(a.preset, over)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tr = Trainer(cfg, tmp)
        setup = time.perf_counter() - t0
        loader = DataLoader(
            tr.train_set,
            batch_sampler=tr.sampler,
            num_workers=0 if tr.cached else cfg.data.num_workers,
        )
        times, it = [], iter(loader)
        for i in range(a.steps + 2):
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            tr.step(batch)
            if i >= 2:  # warm-up (workers starting, first allocations)
                times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    return {
        "mode": mode,
        "backbone": cfg.model.image.backbone,
        "img_size": cfg.model.image.img_size,
        "frozen_blocks": cfg.model.image.frozen_blocks,
        "batch": cfg.train.batch_size,
        "setup_s": setup,
        "step_s": step,
        "steps_per_s": 1 / step,
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="a synthetic benchmark folder")
    ap.add_argument("--region", default="campus")
    ap.add_argument("--points", default="", help="reconstruction folder (GeoLink presets)")
    ap.add_argument("--preset", default="demo_baseline")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers when uncached")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure(a.one, a)))
        return
    print(
        "| mode | backbone @ px (frozen blocks) | batch | setup s (incl. cache build) "
        "| s/step | steps/s | speed-up | peak RSS (GiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for mode in MODES:
        cmd = [sys.executable, __file__, "--one", mode, *sys.argv[1:]]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(f"| {mode} | failed: {res.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        base = base or r["steps_per_s"]
        print(
            f"| {mode} | {r['backbone']} @ {r['img_size']} ({r['frozen_blocks']}) | {r['batch']} "
            f"| {r['setup_s']:.1f} | {r['step_s']:.3f} | {r['steps_per_s']:.2f} "
            f"| {r['steps_per_s'] / base:.1f}x | {r['peak_gib']:.2f} |"
        )


if __name__ == "__main__":
    main()
