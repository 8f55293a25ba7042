"""Deployment speed: per-image localization latency (embedding + FAISS search) with PyTorch and
with onnxruntime, and requests/s of the HTTP service under a bounded loopback load.

Models are randomly initialised (speed does not depend on the weights):
- ``demo``:  the ``cpu`` preset (DINOv2-S/14 @ 112 px + MixVPR -> 1024-d)
- ``paper``: the ``paper`` preset (DINOv2-B/14 @ 448 px + MixVPR -> 4096-d)
The gallery holds ``--gallery`` random L2-normalised tile embeddings (exact ``flat`` index by
default), so search cost is that of a real gallery of that size.

    python benchmarks/bench_deploy.py [--models demo,paper] [--gallery 10000] [--repeats 10]
        [--threads 2] [--index-type flat] [--service-requests 60] [--service-concurrency 4]

Prints Markdown tables. The service test binds 127.0.0.1 only, sends at most
``--service-requests`` requests and stops after ``--service-seconds``.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

PRESETS = {"demo": "cpu", "paper": "paper"}


def _gallery(index_model: dict, n: int, index_type: str, seed: int = 0):
    from geolink.deploy.store import TileIndex

    rng = np.random.default_rng(seed)
    idx = TileIndex.create(index_model, index_type, n_hint=n)
    for s in range(0, n, 5000):
        m = min(5000, n - s)
        x = rng.standard_normal((m, idx.dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        recs = [
            {"id": f"g{s + i}", "lat": 0.0, "lon": 0.0, "footprint_m": None, "source": {}}
            for i in range(m)
        ]
        idx.add(x, recs)
    return idx


def _time_locate(loc, image: np.ndarray, repeats: int) -> dict[str, float]:
    loc.locate([image], top_k=5)  # warm-up
    embed, search, total = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        (res,) = loc.locate([image], top_k=5)
        total.append(1e3 * (time.perf_counter() - t0))
        embed.append(res.timing_ms["embed"])
        search.append(res.timing_ms["search"])
    return {
        "embed": statistics.median(embed),
        "search": statistics.median(search),
        "total": statistics.median(total),
    }


def bench_latency(args: argparse.Namespace, work: Path) -> list[dict]:
    from geolink.deploy.encoders import OnnxEncoder, TorchEncoder
    from geolink.deploy.export import export_onnx, parity_check
    from geolink.deploy.localizer import Localizer
    from geolink.testing.deploy import drone_view, make_checkpoint, textured_tile

    rows = []
    image = drone_view(textured_tile(0, 512), 0)
    for name in args.models.split(","):
        ckpt = make_checkpoint(work / f"{name}.safetensors", PRESETS[name])
        t0 = time.perf_counter()
        onnx_path = export_onnx(ckpt, work / f"{name}.onnx")
        export_s = time.perf_counter() - t0
        par = parity_check(ckpt, onnx_path, batch_sizes=(1,))
        for backend, enc in (
            ("torch", TorchEncoder(ckpt)),
            ("onnxruntime", OnnxEncoder(onnx_path, threads=args.threads)),
        ):
            index = _gallery(enc.info, args.gallery, args.index_type)
            t = _time_locate(Localizer(index, enc), image, args.repeats)
            rows.append({
                "model": name, "backbone": enc.info["backbone"], "img": enc.info["img_size"],
                "dim": enc.info["out_dim"], "backend": backend, **t,
                "export_s": export_s, "max_abs_diff": par["max_abs_diff"],
            })  # fmt: skip
            print(
                f"  {name} {backend}: embed {t['embed']:.1f} ms, search {t['search']:.2f} ms, "
                f"total {t['total']:.1f} ms",
                flush=True,
            )
    return rows


def bench_service(args: argparse.Namespace, work: Path) -> dict:
    import httpx
    import uvicorn

    from geolink.deploy.encoders import OnnxEncoder, TorchEncoder
    from geolink.deploy.localizer import Localizer
    from geolink.deploy.serve.app import create_app
    from geolink.testing.deploy import drone_view, make_checkpoint, textured_tile

    ckpt = work / "demo.safetensors"
    if not ckpt.exists():
        make_checkpoint(ckpt, PRESETS["demo"])
    onnx_path = work / "demo.onnx"
    enc = (
        OnnxEncoder(onnx_path, threads=args.threads)
        if args.service_backend == "onnx" and onnx_path.exists()
        else TorchEncoder(ckpt)
    )
    loc = Localizer(_gallery(enc.info, args.gallery, args.index_type), enc)
    app = create_app(loc)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/locate"
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(drone_view(textured_tile(1, 512), 0)).save(buf, "JPEG", quality=90)
    payload = buf.getvalue()
    deadline = time.perf_counter() + args.service_seconds
    lat: list[float] = []
    errors = 0
    lock = threading.Lock()

    def client(n: int) -> None:
        nonlocal errors
        with httpx.Client(timeout=60) as c:
            for _ in range(n):
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                r = c.post(url, files={"file": ("q.jpg", payload, "image/jpeg")})
                with lock:
                    lat.append(1e3 * (time.perf_counter() - t0))
                    errors += r.status_code != 200

    per = max(1, args.service_requests // args.service_concurrency)
    with httpx.Client() as c:  # warm-up
        c.post(url, files={"file": ("q.jpg", payload, "image/jpeg")})
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.service_concurrency) as pool:
        list(pool.map(client, [per] * args.service_concurrency))
    wall = time.perf_counter() - t0
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()
    lat.sort()
    return {
        "backend": enc.backend, "requests": len(lat), "errors": errors,
        "concurrency": args.service_concurrency, "req_per_s": len(lat) / wall,
        "p50": lat[len(lat) // 2], "p95": lat[min(len(lat) - 1, int(0.95 * len(lat)))],
        "img_bytes": len(payload),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="demo,paper")
    p.add_argument("--gallery", type=int, default=10000)
    p.add_argument("--index-type", default="flat")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--service-requests", type=int, default=60)
    p.add_argument("--service-concurrency", type=int, default=4)
    p.add_argument("--service-seconds", type=float, default=60.0)
    p.add_argument("--service-backend", default="onnx", choices=["torch", "onnx"])
    p.add_argument("--no-service", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(
            f"latency, batch 1, {args.gallery} gallery tiles ({args.index_type}), {args.threads} threads:"
        )
        rows = bench_latency(args, work)
        service = None if args.no_service else bench_service(args, work)
    print()
    print(
        "| model | backbone @ px | dim | backend | embed ms | search ms | total ms | ONNX export s | ONNX max abs diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['backbone']} @ {r['img']} | {r['dim']} | {r['backend']} | "
            f"{r['embed']:.1f} | {r['search']:.2f} | {r['total']:.1f} | {r['export_s']:.1f} | "
            f"{r['max_abs_diff']:.1e} |"
        )
    if service:
        print()
        print(
            "| service (demo model) | backend | concurrency | requests | errors | req/s | p50 ms | p95 ms |"
        )
        print("|---|---|---|---|---|---|---|---|")
        s = service
        print(
            f"| POST /locate, {s['img_bytes'] // 1024} KB JPEG | {s['backend']} | {s['concurrency']} | "
            f"{s['requests']} | {s['errors']} | {s['req_per_s']:.1f} | {s['p50']:.0f} | {s['p95']:.0f} |"
        )


if __name__ == "__main__":
    main()
