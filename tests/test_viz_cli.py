"""``geolink visualize pca|tsne|retrieval`` on a tiny University-1652-layout folder."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from geolink.checkpoint import save_model
from geolink.cli.main import main
from geolink.config import load_config, to_yaml
from geolink.models.image_encoder import ImageEncoder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("u1652")
    rng = np.random.default_rng(0)
    for loc in ("0001", "0002", "0003"):
        colour = rng.integers(0, 255, size=(1, 1, 3))
        for folder, names in (("query_drone", ["image-01", "image-02"]),
                              ("gallery_satellite", [loc])):  # fmt: skip
            for name in names:
                p = root / "test" / folder / loc / f"{name}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                noise = rng.integers(-30, 30, size=(48, 48, 3))
                Image.fromarray(np.clip(colour + noise, 0, 255).astype(np.uint8)).save(p)
    cfg = load_config("test")
    ckpts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = nn.Module()
        model.image_encoder = ImageEncoder(cfg.model.image)
        ckpts.append(save_model(model, root / f"run{seed}" / "checkpoints" / "best.safetensors",
                                to_yaml(cfg)))  # fmt: skip
    return root, [str(c) for c in ckpts]


def _png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_cli_pca_from_dataset(setup, tmp_path):
    root, ckpts = setup
    out = tmp_path / "pca.png"
    argv = ["visualize", "pca", "-c", ckpts[0], "-c", ckpts[1], "--dataset", "university1652",
            "--root", str(root), "--num-images", "2", "--weather", "none", "--weather", "fog_rain",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert _png_size(out) == (3 * 200, 4 * 200 + 30)


def test_cli_tsne_and_retrieval(setup, tmp_path):
    root, ckpts = setup
    out = tmp_path / "tsne.png"
    argv = ["visualize", "tsne", "-c", ckpts[0], "--dataset", "university1652", "--root",
            str(root), "--locations", "3", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert _png_size(out) == (480, 540)
    out = tmp_path / "grid.png"
    argv = ["visualize", "retrieval", "-c", ckpts[1], "--dataset", "university1652", "--root",
            str(root), "--direction", "satellite2drone", "--k", "2", "--queries", "3",
            "--thumb", "32", "--out", str(out)]  # fmt: skip
    # satellite2drone needs query_satellite / gallery_drone, absent here: a clean error
    assert main(argv) == 2
    argv[argv.index("satellite2drone")] = "drone2satellite"
    assert main(argv) == 0
    cell = 32 + 12
    assert _png_size(out) == (8 + 3 * (cell + 8) + 8, 8 + 3 * (cell + 8))


def test_cli_errors_are_clean(setup, tmp_path, capsys):
    root, ckpts = setup
    out = str(tmp_path / "x.png")
    assert main(["visualize", "retrieval", "--out", out]) == 2
    assert "either --topk-csv" in capsys.readouterr().err
    image = str(next(root.rglob("*.jpg")))
    assert main(["visualize", "pca", "-c", str(root / "nope.safetensors"), image, "--out",
                 out]) == 2  # fmt: skip
    assert "checkpoint not found" in capsys.readouterr().err
    argv = ["visualize", "tsne", "-c", ckpts[0], "--root", str(root), "--out", out]
    assert main(argv) == 2  # default dataset "synthetic" needs synth.json
    assert "synth.json" in capsys.readouterr().err


def test_cli_retrieval_from_topk_csv(setup, tmp_path):
    root, _ = setup
    q = sorted((root / "test" / "query_drone").rglob("*.jpg"))[0]
    sats = sorted((root / "test" / "gallery_satellite").rglob("*.jpg"))
    csv_path = tmp_path / "topk_drone2satellite_fog.csv"
    lines = ["query,rank,gallery,score,correct,query_label,gallery_label"]
    lines += [f"{q},{r + 1},{s},{0.9 - r / 10},{int(s.parent.name == q.parent.name)},0001,"
              f"{s.parent.name}" for r, s in enumerate(sats)]  # fmt: skip
    csv_path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "grid.png"
    argv = ["visualize", "retrieval", "--topk-csv", str(csv_path), "--k", "3", "--thumb", "32",
            "--weather", "fog", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    arr = np.asarray(Image.open(out).convert("RGB"))
    cell = 32 + 12
    assert arr.shape == (8 + cell + 8, 8 + 4 * (cell + 8) + 8, 3)
    # result 1 is location 0001 (correct, green), results 2-3 are not (red)
    y = 8 + 2
    xs = [8 + c * (cell + 8) + 8 + cell // 2 for c in (1, 2, 3)]
    assert [tuple(int(v) for v in arr[y, x]) for x in xs] == [(0, 200, 0), (220, 0, 0), (220, 0, 0)]
