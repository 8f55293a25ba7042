"""Speed of the training data pipeline and of the weather operators.

    python benchmarks/bench_data.py                       # synthetic JPEGs written to a temp dir
    python benchmarks/bench_data.py --dataset synthetic --root runs/synth-demo
    python benchmarks/bench_data.py --sizes 128 224 --workers 0 2 --weather-sizes 256 512

Prints two tables: training pairs (drone + satellite, Sample4Geo augmentation, distinct-location
batches) per second, and weather milliseconds per image for every condition.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import DataLoader

from geolink.data import Pair, build_dataset
from geolink.data.samplers import DistinctLocationBatchSampler
from geolink.data.torch_datasets import PairDataset
from geolink.data.weather import CONDITIONS, apply_weather


def fake_pairs(folder: Path, n_loc: int = 32, per_loc: int = 8, size: int = 256) -> list[Pair]:
    """Textured 256 px JPEGs (the demo resolution) in a University-1652-like tree."""
    rng = np.random.default_rng(0)
    pairs = []
    for loc in range(n_loc):
        base = cv2.resize(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), (size, size))
        sat = folder / f"satellite/{loc:04d}/{loc:04d}.jpg"
        sat.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sat), base)
        for k in range(per_loc):
            d = folder / f"drone/{loc:04d}/image-{k:02d}.jpg"
            d.parent.mkdir(parents=True, exist_ok=True)
            noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d), noisy)
            pairs.append(Pair(d, sat, f"{loc:04d}", loc, f"{loc:04d}"))
    return pairs


def bench_pipeline(
    pairs: list[Pair], size: int, workers: int, batch: int, max_batches: int
) -> float:
    ds = PairDataset(pairs, img_size=size, seed=0)
    sampler = DistinctLocationBatchSampler(ds.labels, batch, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, persistent_workers=False)
    n, start = 0, None
    for i, b in enumerate(loader):
        if i == 0:  # exclude worker start-up
            start = time.perf_counter()
            continue
        n += b["drone"].shape[0]
        if i >= max_batches:
            break
    elapsed = time.perf_counter() - (start or time.perf_counter())
    return n / elapsed if elapsed > 0 else float("nan")


def bench_weather(size: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    img = cv2.resize(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8), (size, size))
    out = {}
    for c in CONDITIONS:
        apply_weather(img, c, "warmup")
        t = time.perf_counter()
        for r in range(repeats):
            apply_weather(img, c, f"key{r}")
        out[c] = (time.perf_counter() - t) / repeats * 1e3
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=None, help="read pairs from a dataset (default: fake)")
    ap.add_argument("--root", default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=12, help="timed batches per setting")
    ap.add_argument("--weather-sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset:
            pairs = build_dataset(args.dataset, args.root).train_pairs()
            source = f"{args.dataset} at {args.root}"
        else:
            pairs = fake_pairs(Path(tmp))
            source = "fake 256 px JPEGs"
        print(f"training pipeline ({source}, {len(pairs)} pairs, batch {args.batch})")
        print(f"{'img_size':>8} {'workers':>7} {'pairs/s':>9} {'images/s':>9}")
        for size in args.sizes:
            for w in args.workers:
                rate = bench_pipeline(pairs, size, w, args.batch, args.batches)
                print(f"{size:>8} {w:>7} {rate:>9.1f} {2 * rate:>9.1f}")

    print("\nweather (ms per image, single process)")
    results = {s: bench_weather(s, args.repeats) for s in args.weather_sizes}
    print(f"{'condition':<10}" + "".join(f"{s:>10}px" for s in args.weather_sizes))
    for c in CONDITIONS:
        print(f"{c:<10}" + "".join(f"{results[s][c]:>12.1f}" for s in args.weather_sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
