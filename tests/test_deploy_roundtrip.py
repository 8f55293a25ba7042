"""Index -> locate round trip on the synthetic benchmark with a briefly trained tiny model, and
the same through the command line (index, --add, locate --json, export, locate --onnx)."""

import json
from pathlib import Path

import numpy as np
import pytest

# Load timm (and through it triton) before the synthetic fixture opens an EGL context: importing
# triton after an EGL context exists segfaults on the CPU machines.
import timm  # noqa: F401
import torch

from geolink.deploy.geo import read_coords_csv
from geolink.deploy.localizer import Localizer
from geolink.deploy.tiles import read_image

REGION = "campus"


def _train_tiny(region_root: Path, out: Path, steps: int = 60) -> Path:
    """Fit the test model's 2D encoder to one region's drone/satellite pairs (all locations),
    with the package's InfoNCE, and save it as a GeoLink checkpoint."""
    from geolink.checkpoint import save_model
    from geolink.config import load_config, to_yaml
    from geolink.deploy.encoders import preprocess
    from geolink.losses import info_nce
    from geolink.models.geolink import GeoLink

    cfg = load_config("test", ["model.point.enabled=false", "loss.use_sc=false"])
    torch.manual_seed(0)
    model = GeoLink(cfg.model, cfg.loss)
    size = cfg.model.image.img_size
    sats, drones = [], []
    for split, sat_dir, drone_dir in (
        ("train", "satellite", "drone"),
        ("test", "gallery_satellite", "query_drone"),
    ):
        for loc in sorted(p.name for p in (region_root / split / sat_dir).iterdir()):
            sats.append(
                preprocess([read_image(region_root / split / sat_dir / loc / f"{loc}.jpg")], size)
            )
            views = sorted((region_root / split / drone_dir / loc).glob("*.jpg"))
            drones.append(preprocess([read_image(v) for v in views], size))
    sat = torch.from_numpy(np.concatenate(sats))
    enc = model.image_encoder
    opt = torch.optim.AdamW([p for p in enc.parameters() if p.requires_grad], lr=1e-3)
    scale = torch.tensor(np.log(1 / 0.07), dtype=torch.float32)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        drone = torch.from_numpy(np.stack([d[rng.integers(len(d))] for d in drones]))
        loss = info_nce(enc(drone), enc(sat), scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_model(model.eval(), out, to_yaml(cfg))


@pytest.fixture(scope="module")
def trained(synth_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy_rt")
    return synth_tiny / REGION, _train_tiny(synth_tiny / REGION, out / "tiny.safetensors")


def test_drone_views_retrieve_their_tile(trained, tmp_path):
    from geolink.deploy import store, tiles
    from geolink.deploy.encoders import TorchEncoder

    region, ckpt = trained
    gps = region / "gps.csv"
    enc = TorchEncoder(ckpt)
    out = tmp_path / "index"
    store.main({}, tiles.tiles_from_folder(region / "train" / "satellite", gps), enc, out)
    store.main(
        {}, tiles.tiles_from_folder(region / "test" / "gallery_satellite", gps), enc, out, add=True
    )
    loc = Localizer.from_paths(out)
    assert len(loc.index) == 4
    views = sorted(region.glob("train/drone/*/*.jpg")) + sorted(
        region.glob("test/query_drone/*/*.jpg")
    )
    results = loc.locate_paths(views, top_k=2, coords=read_coords_csv(gps))
    top1 = np.mean([r.matches[0].tile_id == Path(r.query).parent.name for r in results])
    top2 = np.mean([Path(r.query).parent.name in [m.tile_id for m in r.matches] for r in results])
    assert top1 >= 0.75 and top2 >= 0.9, (top1, top2)
    # The estimate is the tile centre: a hit has zero error, a miss the distance between tiles.
    for r in results:
        hit = r.matches[0].tile_id == Path(r.query).parent.name
        assert r.known_source == "csv"
        assert (r.error_m < 1e-6) if hit else (r.error_m > 10.0)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from geolink.cli.main import main

    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_index_add_locate_export_onnx(trained, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    region, ckpt = trained
    gps = str(region / "gps.csv")
    idx = str(tmp_path / "index")
    rc, out, err = _cli(
        capsys,
        "index",
        "--checkpoint",
        str(ckpt),
        "--tiles",
        str(region / "test" / "gallery_satellite"),
        "--coords",
        gps,
        "--out",
        idx,
    )
    assert rc == 0, err
    # A different tile set without --add is refused, with the fix in the message.
    rc, out, err = _cli(
        capsys,
        "index",
        "--checkpoint",
        str(ckpt),
        "--tiles",
        str(region / "train" / "satellite"),
        "--coords",
        gps,
        "--out",
        idx,
    )
    assert rc == 2 and "--add" in err
    rc, out, err = _cli(
        capsys,
        "index",
        "--checkpoint",
        str(ckpt),
        "--tiles",
        str(region / "train" / "satellite"),
        "--coords",
        gps,
        "--out",
        idx,
        "--add",
    )
    assert rc == 0 and "4 tiles" in out, err
    query = sorted((region / "test" / "query_drone").glob("*/*.jpg"))[0]
    rc, out, err = _cli(
        capsys, "locate", "--index", idx, str(query), "--coords", gps, "--top-k", "4", "--json"
    )
    assert rc == 0, err
    torch_res = json.loads(out)[0]
    assert len(torch_res["matches"]) == 4 and torch_res["error_m"] is not None
    onnx = str(tmp_path / "enc.onnx")
    rc, out, err = _cli(
        capsys, "export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", onnx
    )
    assert rc == 0 and "parity" in out and "OK" in out, out + err
    rc, out, err = _cli(
        capsys,
        "locate",
        "--index",
        idx,
        str(query),
        "--coords",
        gps,
        "--top-k",
        "4",
        "--json",
        "--onnx",
        onnx,
    )
    assert rc == 0, err
    onnx_res = json.loads(out)[0]
    assert [m["tile_id"] for m in onnx_res["matches"]] == [
        m["tile_id"] for m in torch_res["matches"]
    ]
    np.testing.assert_allclose(
        [m["score"] for m in onnx_res["matches"]],
        [m["score"] for m in torch_res["matches"]],
        atol=1e-4,
    )
