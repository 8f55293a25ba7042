"""The deploy role on its own: a fresh venv with only `pip install ".[deploy]"` (no torch, timm,
pycolmap, moderngl, matplotlib, ...; OmegaConf is core: every step's config goes through it) indexes tiles, localizes drone images with an
ONNX export, imports the service, and answers a torch-only command with the install hint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "torch",
    "timm",
    "safetensors",
    "pycolmap",
    "moderngl",
    "matplotlib",
    "sklearn",
)


@pytest.fixture(scope="module")
def deploy_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("deploy") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "-e", f"{ROOT}[deploy]"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return venv


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from geolink.deploy.export import export_onnx
    from geolink.testing.deploy import drone_view, make_checkpoint, make_tiles, textured_tile

    root = tmp_path_factory.mktemp("deploy_data")
    onnx_path = export_onnx(make_checkpoint(root / "tiny.safetensors"), root / "enc.onnx")
    tiles, csv_path = make_tiles(root, 6)
    queries = root / "queries"
    queries.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(drone_view(textured_tile(i), 1)).save(queries / f"t{i:03d}.png")
    return onnx_path, tiles, csv_path, queries


def _run(venv: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [str(venv / "bin" / "geolink"), *args], capture_output=True, text=True, env=env, cwd=venv
    )


def test_deploy_extra_alone_serves_an_onnx_export(deploy_venv, exported, tmp_path):
    onnx_path, tiles, csv_path, queries = exported
    py = str(deploy_venv / "bin" / "python")
    probe = "import importlib.util as u, json; print(json.dumps([m for m in %r if u.find_spec(m)]))"
    present = json.loads(subprocess.check_output([py, "-c", probe % (HEAVY,)], text=True))
    assert present == []  # the role really is without the research stack
    index = tmp_path / "index"
    r = _run(deploy_venv, "index", "--onnx", str(onnx_path), "--tiles", str(tiles),
             "--coords", str(csv_path), "--footprint-m", "150", "--out", str(index))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run(deploy_venv, "locate", "--onnx", str(onnx_path), "--index", str(index), str(queries),
             "--coords", str(csv_path), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout.strip()
    results = (
        json.loads(text) if text.startswith("[") else [json.loads(x) for x in text.splitlines()]
    )
    assert len(results) == 3 and all(res["matches"] for res in results)
    # refinement and tracking need nothing beyond the deploy extra either (OpenCV's SIFT)
    r = _run(deploy_venv, "locate", "--onnx", str(onnx_path), "--index", str(index), str(queries),
             "--refine", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run(deploy_venv, "track", str(queries), "--onnx", str(onnx_path), "--index", str(index),
             "--out", str(tmp_path / "track"), "--particles", "200")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "track" / "track.png").is_file()
    subprocess.run(
        [py, "-c", "import geolink.deploy.serve.app, geolink.deploy.localizer"], check=True
    )
    # a torch-only command names the extra to install instead of a traceback
    r = _run(deploy_venv, "eval", "--checkpoint", "x", "--dataset", "synthetic", "--root", "y",
             "--out", str(tmp_path / "e"))  # fmt: skip
    assert r.returncode == 2 and 'pip install "geolink[torch]"' in r.stderr
    assert "Traceback" not in r.stderr
