"""Training throughput and peak memory per preset (model step only: random batches, no I/O).

    python benchmarks/bench_train.py [--presets test cpu cpu_baseline paper] [--steps 3]

Each preset runs in its own subprocess so peak RSS (or CUDA peak memory) is per preset.
Prints a Markdown table. On a GPU machine the same script measures the GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def measure(preset: str, steps: int, batch: int | None) -> dict:
    import resource

    import torch

    from geolink.config import load_config
    from geolink.train.trainer import autocast_for, resolve_device

    over = [f"train.batch_size={batch}"] if batch else []
    cfg = load_config(preset, over)
    cfg.model.image.pretrained = None
    dev = resolve_device("auto")
    from geolink.models.geolink import GeoLink

    model = GeoLink(cfg.model, cfg.loss).to(dev).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    b, s = cfg.train.batch_size, cfg.model.image.img_size
    drone, sat = torch.randn(b, 3, s, s, device=dev), torch.randn(b, 3, s, s, device=dev)
    pf = torch.randn(b, 1152, device=dev) if cfg.model.point.enabled else None
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with autocast_for(dev, cfg.train.amp):
            out = model(drone, sat, point_features=pf)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:  # first step is warm-up
            times.append(time.perf_counter() - t0)
    step = sorted(times)[len(times) // 2]
    peak = (
        torch.cuda.max_memory_allocated() / 2**30
        if dev.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    return {
        "preset": preset,
        "device": str(dev),
        "backbone": cfg.model.image.backbone,
        "img_size": s,
        "batch": b,
        "step_s": step,
        "img_per_s": 2 * b / step,
        "peak_gib": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["test", "cpu_baseline", "cpu", "paper"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="override batch size (0 = preset's)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(measure(a.one, a.steps, a.batch or None)))
        return
    print("| preset | device | backbone @ px | batch | s/step | images/s | peak memory (GiB) |")
    print("|---|---|---|---|---|---|---|")
    for p in a.presets:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            p,
            "--steps",
            str(a.steps),
            "--batch",
            str(a.batch),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(f"| {p} | failed: {res.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(
            f"| {r['preset']} | {r['device']} | {r['backbone']} @ {r['img_size']} | {r['batch']} | "
            f"{r['step_s']:.2f} | {r['img_per_s']:.1f} | {r['peak_gib']:.2f} |"
        )


if __name__ == "__main__":
    main()
