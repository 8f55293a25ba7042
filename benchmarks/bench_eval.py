"""Evaluation speed: ranking (torch chunks, FAISS) and metrics (chunked vs a per-query loop).

Problems (random L2-normalised embeddings clustered by label so the metrics are not trivial):
- ``u1652_d2s``: 37,855 drone queries x 951 satellite gallery (701 kept by the paper protocol)
- ``u1652_s2d``: 701 satellite queries x 51,355 drone gallery (951 classes, ~54 per class)
- ``1k_x_100k``: 1,000 queries x 100,000 gallery items

    python benchmarks/bench_eval.py [--dim 1024] [--problems u1652_d2s,u1652_s2d,1k_x_100k]
                                    [--no-loop] [--threads 2] [--loop-queries 2000]

Prints a Markdown table; the loop reference also checks that both implementations agree
("max diff": largest metric difference in percentage points, on the loop's query subset).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from geolink.evaluate.metrics import retrieval_metrics
from geolink.evaluate.ranking import topk
from geolink.evaluate.reference import retrieval_metrics_loop

PROBLEMS = {
    # name: (n_query, query classes, n_gallery, gallery classes, query-class share of gallery)
    "u1652_d2s": (37855, 701, 951, 951),
    "u1652_s2d": (701, 701, 51355, 951),
    "1k_x_100k": (1000, 1000, 100000, 2000),
}


def _clustered(labels: np.ndarray, centers: np.ndarray, noise: float, rng) -> np.ndarray:
    x = centers[labels] + noise * rng.standard_normal((len(labels), centers.shape[1]), np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_problem(name: str, dim: int, seed: int = 0, shrink: int = 1):
    """Embeddings and labels of a problem; ``shrink`` divides every size (quick checks)."""
    nq, qcls, ng, gcls = (n // shrink for n in PROBLEMS[name])
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((gcls, dim), np.float32) / np.sqrt(dim)
    ql = np.sort(np.resize(np.arange(qcls), nq))
    gl = np.sort(np.resize(np.arange(gcls), ng))
    noise = 3.2 / np.sqrt(dim)  # R@1 well below 100 % so ranks of positives vary
    return _clustered(ql, centers, noise, rng), _clustered(gl, centers, noise, rng), ql, gl


def _time(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--problems", default=",".join(PROBLEMS))
    p.add_argument("--no-loop", action="store_true", help="skip the slow per-query loop")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--loop-queries", type=int, default=2000, help="queries timed in the loop (scaled up)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"dim={args.dim} torch threads={torch.get_num_threads()} cpus={os.cpu_count()} "
        f"load(1 min)={load:.1f}; loop time scaled from {args.loop_queries} queries\n"
    )
    print(
        "| problem | Nq x Ng | topk torch (s) | topk faiss (s) | metrics (s) | loop ref (s) "
        "| speed-up | R@1 | AP | max diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.problems.split(","):
        q, g, ql, gl = make_problem(name, args.dim)
        t_torch, (_, it) = _time(lambda q=q, g=g: topk(q, g, 10, backend="torch"))
        t_faiss, (_, i_f) = _time(lambda q=q, g=g: topk(q, g, 10, backend="faiss"))
        agree = float(np.mean(it[:, 0] == i_f[:, 0]))
        t_m, m = _time(lambda q=q, g=g, ql=ql, gl=gl: retrieval_metrics(q, g, ql, gl, "paper"))
        if args.no_loop:
            t_loop, diff, speed = float("nan"), float("nan"), "-"
        else:
            # The loop runs on the first n queries (every class is covered: labels cycle) and
            # its time is scaled to all queries; parity is checked on the same subset.
            n = min(len(q), args.loop_queries)
            t_sub, ref = _time(
                lambda q=q[:n], g=g, ql=ql[:n], gl=gl: retrieval_metrics_loop(q, g, ql, gl, "paper")
            )
            sub = retrieval_metrics(q[:n], g, ql[:n], gl, "paper")
            diff = max(abs(sub[k] - ref[k]) for k in ref)
            t_loop = t_sub * len(q) / n
            speed = f"{t_loop / t_m:.1f}x"
        print(
            f"| {name} | {len(q)} x {len(g)} | {t_torch:.2f} | {t_faiss:.2f} (top-1 agree "
            f"{agree:.3f}) | {t_m:.2f} | {t_loop:.2f} | {speed} | {m['R@1']:.2f} | "
            f"{m['AP']:.2f} | {diff:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
