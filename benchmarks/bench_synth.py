"""Speed of the synthetic benchmark: renderer frames/s, scene building, whole presets.

    python benchmarks/bench_synth.py                  # renderer + scene building + demo preset
    python benchmarks/bench_synth.py --no-preset      # skip the whole-preset run
    python benchmarks/bench_synth.py --sizes 256 512 --preset demo --workers 2

Prints Markdown tables. Times are wall-clock; "CPU s" counts every thread and child process
(llvmpipe renders on several threads), which is the better figure on a shared machine.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from geolink.data.synthetic import cameras as C
from geolink.data.synthetic import generate, resolve_params, world
from geolink.data.synthetic.render import Light, Renderer
from geolink.data.synthetic.styles import get_style


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def _timed(fn, n: int) -> tuple[float, float]:
    """Median wall ms and mean CPU ms of ``n`` calls after one warm-up."""
    fn()
    walls, c0 = [], _cpu()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    return 1e3 * float(np.median(walls)), 1e3 * (_cpu() - c0) / n


def bench_renderer(sizes: list[int], frames: int) -> None:
    params = resolve_params("demo")
    print("| region | triangles | frame | size | ms / frame | CPU ms / frame | frames / s |")
    print("|---|---|---|---|---|---|---|")
    rend = Renderer(shadow_size=params.shadow_size)
    for r, name in enumerate(params.regions):
        style = get_style(name)
        scene = world.build_scene(style, params, 0, r, 0)
        rend.set_atlas((0, r), world.region_atlas(style, 0, r))
        rend.set_scene(scene.vertices, scene.ground, scene.half)
        sun = C.sun_direction(*style.drone_sun)
        light = Light(sun, np.ones(3), np.full(3, 0.5))
        tris = len(scene.vertices) // 3
        ms, cpu = _timed(lambda s=sun: rend.set_sun(s) or rend.ctx.finish(), frames)
        print(f"| {name} | {tris} | shadow map | {params.shadow_size} | {ms:.1f} | {cpu:.1f} | "
              f"{1e3 / ms:.0f} |")  # fmt: skip
        for size in sizes:
            K = C.intrinsics(size, size, params.hfov_deg)
            T = C.orbit_poses([(160.0, 140.0, 1)], np.zeros(3), 30.0)[0][0]
            proj = C.gl_perspective(K, size, size, 5.0, 6000.0)
            ms, cpu = _timed(
                lambda T=T, proj=proj, size=size, light=light, g=style.drone_grading: rend.render(
                    C.gl_view(T), proj, T[:3, 3], (size, size), light, g
                ),
                frames,
            )
            print(f"| {name} | {tris} | drone (perspective) | {size} | {ms:.1f} | {cpu:.1f} | "
                  f"{1e3 / ms:.0f} |")  # fmt: skip
            Ts = C.satellite_pose(np.zeros(3), params.satellite_height_m)
            ortho = C.gl_ortho(params.footprint_m / 2, params.footprint_m / 2, 1.0, 6000.0)
            ms, cpu = _timed(
                lambda Ts=Ts, o=ortho, size=size, light=light, g=style.satellite_grading: (
                    rend.render(C.gl_view(Ts), o, Ts[:3, 3], (size, size), light, g)
                ),
                frames,
            )
            print(f"| {name} | {tris} | satellite (orthographic) | {size} | {ms:.1f} | {cpu:.1f} | "
                  f"{1e3 / ms:.0f} |")  # fmt: skip
    rend.release()


def bench_scene(n: int) -> None:
    params = resolve_params("demo")
    print("\n| region | scene build (layout + ground texture + mesh), ms | CPU ms |")
    print("|---|---|---|")
    for r, name in enumerate(params.regions):
        style = get_style(name)
        locs = iter(range(1000))
        ms, cpu = _timed(
            lambda s=style, r=r, locs=locs: world.build_scene(s, params, 0, r, next(locs)), n
        )
        print(f"| {name} | {ms:.0f} | {cpu:.0f} |")


def bench_preset(preset: str, workers: int | None) -> None:
    overrides = {} if workers is None else {"workers": workers}
    p = resolve_params(preset, **overrides)
    n_loc = p.n_locations * len(p.regions)
    n_img = n_loc * (sum(r[2] for r in p.drone_rings()) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        c0, t0 = _cpu(), time.perf_counter()
        root = generate(Path(tmp) / preset, preset, seed=0, **overrides)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        size_mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    print("\n| preset | workers | locations | images | wall s | CPU s | images / s | disk MiB |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {preset} | {p.workers} | {n_loc} | {n_img} | {wall:.1f} | {cpu:.1f} | "
          f"{n_img / wall:.0f} | {size_mb:.0f} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--scenes", type=int, default=3, help="scenes built per region")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--no-preset", action="store_true", help="skip the whole-preset run")
    args = ap.parse_args(argv)
    bench_renderer(args.sizes, args.frames)
    bench_scene(args.scenes)
    if not args.no_preset:
        bench_preset(args.preset, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
