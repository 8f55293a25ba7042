"""GPU acceptance run: encoder throughput against the bf16 roofline, paper-preset training speed
and memory, bf16 crash checks, U1652-size ranking on the GPU, and the evaluation input pipeline.

    python benchmarks/gpu_check.py [--out gpu_check.json] [--only encoder,onnx,train,crash,
                                    ranking,pipeline] [--dry-run]

Weights are random (no hub access is needed or attempted): throughput, memory and numerical
health do not depend on them. Prints one Markdown table and writes every number to ``--out``.
On a machine without CUDA (or with ``--dry-run``) the same code paths run at toy sizes on the CPU
(a tiny ViT, 56 px, small ranking problems); the table and the JSON say so. CI runs the dry run.
Meant to take under 5 minutes on one H100/H200-class GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eval import make_problem  # noqa: E402

SECTIONS = ("encoder", "onnx", "train", "crash", "ranking", "pipeline")

# Dense (no structured sparsity) bf16 tensor-core peaks from NVIDIA's product datasheets; the
# datasheets print the sparse figure, twice these. Matched against torch.cuda.get_device_name()
# in this order (the first name fragments that all occur win).
PEAK_BF16_TFLOPS: list[tuple[tuple[str, ...], float, str]] = [
    (("H200", "NVL"), 835.0, "H200 NVL datasheet: 1,671 TFLOPS bf16 with sparsity"),
    (("H200",), 989.5, "H200 SXM datasheet: 1,979 TFLOPS bf16 with sparsity"),
    (("H100", "NVL"), 835.0, "H100 NVL datasheet: 1,671 TFLOPS bf16 with sparsity"),
    (("H100", "PCIe"), 756.5, "H100 PCIe datasheet: 1,513 TFLOPS bf16 with sparsity"),
    (("H100",), 989.5, "H100 SXM datasheet: 1,979 TFLOPS bf16 with sparsity"),
    (("GH200",), 989.5, "GH200 datasheet: 1,979 TFLOPS bf16 with sparsity"),
    (("A100",), 312.0, "A100 datasheet: 312 TFLOPS bf16 dense"),
    (("L40S",), 362.1, "L40S datasheet: 733 TFLOPS bf16 with sparsity"),
    (("L4",), 121.0, "L4 datasheet: 242 TFLOPS bf16 with sparsity"),
    (("4090",), 165.2, "RTX 4090 (Ada whitepaper): 165.2 TFLOPS bf16, FP32 accumulate"),
]
THROUGHPUT_GOAL = 2000.0  # images/s, DINOv2-B/14 @ 448 + MixVPR in bf16 on one H100-class GPU

# The dry run: the same code paths at toy sizes (a 2-block ViT, 56 px)
TINY = [
    "model.image.backbone=test_vit",
    "model.image.img_size=56",
    "model.image.frozen_blocks=1",
    "model.image.mix_out_channels=32",
    "model.image.mix_out_rows=2",
    "model.point.expert_channels=16",
    "loss.club_hidden=64",
]


class Check:
    """Collects result rows; a failing section becomes an error row, the others still run."""

    def __init__(self, dry: bool, device: torch.device):
        self.dry, self.device = dry, device
        self.rows: list[dict] = []

    def add(self, section: str, setting: str, result: str, **data) -> None:
        self.rows.append({"section": section, "setting": setting, "result": result, **data})
        print(f"  {section:9s} {setting:38s} {result}", flush=True)

    def section(self, name: str, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        print(f"[{name}]", flush=True)
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report it, go on with the next section
            self.add(name, "section failed", f"ERROR {type(e).__name__}: {e}", ok=False,
                     traceback=traceback.format_exc())  # fmt: skip
        self.add(name, "section time", f"{time.perf_counter() - t0:.1f} s")

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated() / 2**30 if self.device.type == "cuda" else None

    def free(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def gpu_roofline(name: str) -> tuple[float | None, str]:
    for parts, tflops, source in PEAK_BF16_TFLOPS:
        if all(p.lower() in name.lower() for p in parts):
            return tflops, source
    return None, f"no bf16 peak known for '{name}' (add it to PEAK_BF16_TFLOPS)"


def paper_config(check: Check, extra: list[str] = ()):
    from geolink.config import load_config

    over = [*(TINY if check.dry else []), "model.image.pretrained=none", *extra]
    over.append(f"train.device={check.device.type}")
    return load_config("paper", over)


def _timed(check: Check, fn: Callable[[], object], min_iters: int, min_seconds: float) -> float:
    """Median seconds of one call of ``fn`` after two warm-up calls."""
    for _ in range(2):
        fn()
    check.sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        check.sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return float(np.median(times))


def _fmt_mem(gib: float | None) -> str:
    return f"{gib:.1f} GiB" if gib is not None else "n/a (CPU)"


# ---- 1. encoder throughput -----------------------------------------------------------------


def encoder_flops(cfg) -> float:
    """FLOPs of one image through the 2D encoder (attention matmuls included), counted on CPU."""
    from geolink.complexity import count_complexity
    from geolink.models.image_encoder import ImageEncoder

    return 2.0 * count_complexity(ImageEncoder(cfg.model.image))["macs_with_attention"]


def check_encoder(check: Check, peak: float | None) -> None:
    from geolink.models.image_encoder import ImageEncoder

    cfg = paper_config(check)
    flops = encoder_flops(cfg)
    check.add("encoder", "FLOPs per image", f"{flops / 1e9:.4g} GFLOP", flops=flops)
    enc = ImageEncoder(cfg.model.image).to(check.device).eval()
    size = cfg.model.image.img_size
    batches = (2, 4) if check.dry else (32, 64, 128)
    for dtype in ("bf16", "fp32"):
        for b in batches:
            check.reset_peak()
            x = torch.randn(b, 3, size, size, device=check.device)
            # bf16 autocast on the CPU too in the dry run, so its numerics are exercised
            ctx = (
                torch.autocast(check.device.type, dtype=torch.bfloat16)
                if dtype == "bf16"
                else contextlib.nullcontext()
            )

            def run(x=x, ctx=ctx):
                with torch.inference_mode(), ctx:
                    return enc(x)

            out = run()
            finite = bool(torch.isfinite(out.float()).all())
            sec = _timed(check, run, min_iters=5, min_seconds=0.5 if check.dry else 3.0)
            ips = b / sec
            ratio = ips * flops / (peak * 1e12) if peak else None
            note = f", {100 * ratio:.0f} % of bf16 peak" if ratio is not None else ""
            goal = ""
            if dtype == "bf16" and not check.dry and check.device.type == "cuda":
                goal = f" (goal {THROUGHPUT_GOAL:.0f}: {'met' if ips >= THROUGHPUT_GOAL else 'MISSED'})"
            check.add(
                "encoder", f"{dtype} batch {b} @ {size}px",
                f"{ips:,.0f} img/s{note}, peak {_fmt_mem(check.peak_gib())}{goal}"
                + ("" if finite else ", NON-FINITE OUTPUT"),
                images_per_s=ips, roofline_ratio=ratio, peak_gib=check.peak_gib(),
                dtype=dtype, batch=b, finite=finite, ok=finite,
            )  # fmt: skip
            del x, out


# ---- 1b. ONNX through onnxruntime ----------------------------------------------------------


def check_onnx(check: Check) -> None:
    try:
        import onnxruntime as ort
    except ImportError as e:
        check.add("onnx", "onnxruntime", f"skipped: not installed ({e})")
        return
    providers = ort.get_available_providers()
    if check.device.type == "cuda" and "CUDAExecutionProvider" not in providers:
        check.add(
            "onnx", "onnxruntime-gpu",
            f"skipped: onnxruntime has no CUDAExecutionProvider (has {', '.join(providers)}); "
            "`pip install onnxruntime-gpu` matching the CUDA version",
        )  # fmt: skip
        return
    provider = "CUDAExecutionProvider" if check.device.type == "cuda" else "CPUExecutionProvider"
    from geolink.checkpoint import save_model
    from geolink.config import to_yaml
    from geolink.deploy.export import export_onnx
    from geolink.models.geolink import GeoLink

    cfg = paper_config(check)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_model(GeoLink(cfg.model, cfg.loss), Path(tmp) / "m.safetensors", to_yaml(cfg))
        t0 = time.perf_counter()
        path = export_onnx(ckpt, Path(tmp) / "m.onnx")
        check.add("onnx", "export (TorchScript exporter)", f"{time.perf_counter() - t0:.1f} s")
        sess = ort.InferenceSession(str(path), providers=[provider])
        name = sess.get_inputs()[0].name
        size = cfg.model.image.img_size
        for b in (2, 4) if check.dry else (32, 64, 128):
            x = np.random.default_rng(0).standard_normal((b, 3, size, size)).astype(np.float32)
            sec = _timed(check, lambda x=x: sess.run(None, {name: x}), 3, 0.5 if check.dry else 3.0)
            check.add("onnx", f"{provider.removesuffix('ExecutionProvider')} fp32 batch {b}",
                      f"{b / sec:,.0f} img/s", images_per_s=b / sec, batch=b)  # fmt: skip


# ---- 2 + 3. training -----------------------------------------------------------------------


def _trainer(check: Check, cfg, batch: int):
    from geolink.train.trainer import Trainer

    p = cfg.model.point
    dim = p.embed_dim * 2**p.stages  # the Point-NN descriptor of these settings
    feats = {f"s{i:04d}": torch.randn(dim) for i in range(batch)}
    t = Trainer.without_data(cfg, point_features=feats if cfg.model.point.enabled else None)
    size = cfg.model.image.img_size
    data = {
        "drone": torch.randn(batch, 3, size, size, device=check.device),
        "satellite": torch.randn(batch, 3, size, size, device=check.device),
        "index": torch.arange(batch),
        "scene": list(feats),
    }
    return t, data


def _train_speed(check: Check, cfg, batch: int) -> dict:
    check.reset_peak()
    t, data = _trainer(check, cfg, batch)
    losses = t.step(data)
    sec = _timed(check, lambda: t.step(data), min_iters=3, min_seconds=0.5 if check.dry else 2.0)
    res = {
        "batch": batch,
        "steps_per_s": 1.0 / sec,
        "images_per_s": 2 * batch / sec,  # a drone and a satellite image per pair
        "peak_gib": check.peak_gib(),
        "finite": all(math.isfinite(v) for v in losses.values()),
    }
    return res  # the caller frees the memory once this frame is gone


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def check_train(check: Check) -> None:
    cfg = paper_config(check, ["train.amp=true"])
    first = _train_speed(check, cfg, cfg.train.batch_size)
    check.free()
    precision = "bf16" if check.device.type == "cuda" else "fp32 (train.amp is CUDA-only)"
    check.add(
        "train", f"paper preset, {precision}, batch {first['batch']}",
        f"{first['steps_per_s']:.2f} steps/s, {first['images_per_s']:,.0f} img/s, "
        f"peak {_fmt_mem(first['peak_gib'])}", **first, ok=first["finite"],
    )  # fmt: skip
    # the largest batch that fits: double until out of memory
    best, b = first, first["batch"] * 2
    cap = 8 if check.dry else 1024
    while b <= cap:
        oom = False
        try:
            res = _train_speed(check, cfg, b)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
            if not _is_oom(e):
                raise
            oom = True  # freed below, once the exception (and its frames) are gone
        check.free()
        if oom:
            check.add("train", f"batch {b}", "out of memory", batch=b, oom=True)
            break
        best, b = res, b * 2
    check.add(
        "train", f"largest batch tried that fits: {best['batch']}",
        f"{best['steps_per_s']:.2f} steps/s, {best['images_per_s']:,.0f} img/s, "
        f"peak {_fmt_mem(best['peak_gib'])}", **best, largest=True, ok=best["finite"],
    )  # fmt: skip


def check_crash(check: Check, steps: int) -> None:
    variants = {
        "E=1": ["model.point.experts=1"],
        "E=7": ["model.point.experts=7"],
        "E=15": ["model.point.experts=15"],
        "head=linear": ["model.point.head=linear"],
    }
    for name, over in variants.items():
        for amp in (True, False):
            cfg = paper_config(check, [*over, f"train.amp={str(amp).lower()}"])
            t, data = _trainer(check, cfg, cfg.train.batch_size)
            try:
                history = [t.step(data) for _ in range(steps)]
                finite = all(math.isfinite(v) for h in history for v in h.values())
                last = history[-1]["loss"]
                result = f"{'ok' if finite else 'NON-FINITE'} after {steps} steps, loss {last:.3f}"
            except Exception as e:  # noqa: BLE001 - the crash is the finding
                finite, last = False, None
                result = f"CRASH {type(e).__name__}: {e}"
            label = "bf16" if amp and check.device.type == "cuda" else "fp32"
            check.add("crash", f"{name}, amp={amp} ({label})", result, variant=name, amp=amp,
                      finite=finite, last_loss=last, ok=finite)  # fmt: skip
            del t, data
            check.free()


# ---- 4. ranking and metrics ----------------------------------------------------------------


def check_ranking(check: Check) -> None:
    from geolink.evaluate.metrics import retrieval_metrics
    from geolink.evaluate.ranking import topk

    dim = 64 if check.dry else 4096
    for name in ("u1652_d2s", "u1652_s2d"):
        q, g, ql, gl = make_problem(name, dim, shrink=50 if check.dry else 1)
        devices = [torch.device("cpu")] + ([check.device] if check.device.type == "cuda" else [])
        results = {}
        for dev in devices:
            t0 = time.perf_counter()
            s, i = topk(q, g, 10, device=dev)
            check.sync()
            t_rank = time.perf_counter() - t0
            t0 = time.perf_counter()
            m = retrieval_metrics(q, g, ql, gl, device=dev)
            check.sync()
            t_metrics = time.perf_counter() - t0
            results[dev.type] = (i, m)
            check.add(
                "ranking", f"{name} {len(q)}x{len(g)} on {dev.type}",
                f"top-10 {t_rank:.2f} s, metrics {t_metrics:.2f} s, R@1 {m['R@1']:.2f}",
                problem=name, device=dev.type, rank_s=t_rank, metrics_s=t_metrics, metrics=m,
            )  # fmt: skip
        if "cuda" in results:
            (ic, mc), (ig, mg) = results["cpu"], results["cuda"]
            diff = max(abs(mc[k] - mg[k]) for k in mc)
            same_top1 = float((ic[:, 0] == ig[:, 0]).mean())
            check.add(
                "ranking", f"{name}: GPU vs CPU",
                f"max metric diff {diff:.2e} points, top-1 agreement {100 * same_top1:.3f} %",
                problem=name, max_metric_diff=diff, top1_agreement=same_top1, ok=diff < 0.01,
            )  # fmt: skip


# ---- 5. the evaluation input pipeline ------------------------------------------------------


def check_pipeline(check: Check) -> None:
    """``embed_images`` end to end on JPEG files (decode, resize, weather-free): does the
    DataLoader keep the GPU busy, and how many workers does it take?"""
    from PIL import Image

    from geolink.evaluate.embed import embed_images
    from geolink.models.image_encoder import ImageEncoder

    cfg = paper_config(check)
    enc = ImageEncoder(cfg.model.image).to(check.device).eval()
    n, side = (16, 64) if check.dry else (512, 512)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k in range(n):
            p = Path(tmp) / f"{k:04d}.jpg"
            Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(p)
            paths.append(p)
        cores = os.cpu_count() or 1
        for workers in sorted({0, min(4, cores), min(8, cores)}):
            t0 = time.perf_counter()
            emb = embed_images(enc, paths, batch_size=8 if check.dry else 128,
                               num_workers=workers, device=check.device)  # fmt: skip
            sec = time.perf_counter() - t0
            check.add("pipeline", f"embed_images {n} JPEGs {side}px, {workers} workers",
                      f"{n / sec:,.0f} img/s", images_per_s=n / sec, workers=workers,
                      finite=bool(np.isfinite(emb).all()))  # fmt: skip


# ---- main ----------------------------------------------------------------------------------


def environment(check: Check) -> dict:
    env = {"torch": torch.__version__, "cpu_count": os.cpu_count(), "dry_run": check.dry}
    if check.device.type == "cuda":
        props = torch.cuda.get_device_properties(check.device)
        peak, source = gpu_roofline(props.name)
        env.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30,
                   capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                   bf16_peak_tflops=peak, bf16_peak_source=source)  # fmt: skip
    return env


def markdown(env: dict, rows: list[dict]) -> str:
    head = (
        f"GPU: {env['gpu']} ({env['gpu_memory_gib']:.0f} GiB, CUDA {env['cuda']}); bf16 peak "
        f"{env['bf16_peak_tflops']} TFLOP/s ({env['bf16_peak_source']})"
        if "gpu" in env
        else "DRY RUN on the CPU (no CUDA device): toy sizes, numbers say nothing about a GPU"
    )
    lines = [head, "", "| check | setting | result |", "|---|---|---|"]
    lines += [f"| {r['section']} | {r['setting']} | {r['result']} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gpu_check.json", help="JSON file to write")
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU even with CUDA")
    p.add_argument("--crash-steps", type=int, default=20)
    args = p.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cuda = torch.cuda.is_available() and not args.dry_run
    check = Check(dry=not cuda, device=torch.device("cuda" if cuda else "cpu"))
    if check.dry:
        print("no CUDA device (or --dry-run): a dry run of the same code paths on the CPU")
    torch.manual_seed(0)
    env = environment(check)
    t0 = time.perf_counter()
    steps = 2 if check.dry else args.crash_steps
    jobs = {
        "encoder": lambda: check_encoder(check, env.get("bf16_peak_tflops")),
        "onnx": lambda: check_onnx(check),
        "train": lambda: check_train(check),
        "crash": lambda: check_crash(check, steps),
        "ranking": lambda: check_ranking(check),
        "pipeline": lambda: check_pipeline(check),
    }
    for name in only:
        check.section(name, jobs[name])
    env["seconds"] = time.perf_counter() - t0
    failed = [r for r in check.rows if r.get("ok") is False]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "rows": check.rows}, indent=1, default=str))
    print()
    print(markdown(env, check.rows))
    print(f"\n{len(failed)} failed check(s); {env['seconds']:.0f} s; JSON: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
