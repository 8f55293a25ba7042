"""ONNX export (parity with PyTorch, dynamic batch, metadata), the ONNX encoder, the torch-free
ONNX localization path, and the import boundary of the deployment modules."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from geolink.deploy import store, tiles_from_folder  # noqa: E402
from geolink.deploy.encoders import OnnxEncoder, TorchEncoder, preprocess  # noqa: E402
from geolink.deploy.export import export_onnx, parity_check  # noqa: E402
from geolink.deploy.localizer import Localizer  # noqa: E402
from geolink.errors import DataError, GeoLinkError  # noqa: E402
from geolink.testing.deploy import drone_view, make_checkpoint, make_tiles, textured_tile  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ckpt = make_checkpoint(root / "tiny.safetensors")
    return root, ckpt, export_onnx(ckpt, root / "enc.onnx")


def test_onnx_parity_and_dynamic_batch(exported):
    _, ckpt, onnx_path = exported
    par = parity_check(ckpt, onnx_path, batch_sizes=(1, 2, 5))
    assert par["max_abs_diff"] < 1e-4 and par["min_cosine"] > 0.99999
    import onnx

    model = onnx.load(str(onnx_path))
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value  # symbolic batch axis
    props = {p.key: p.value for p in model.metadata_props}
    contract = json.loads(props["geolink_contract"])  # one typed value, numbers as numbers
    assert props["format"] == "geolink-onnx-v2"
    assert contract["img_size"] == 56 and contract["out_dim"] == 64
    assert contract["mean"] == [0.485, 0.456, 0.406] and contract["std"] == [0.229, 0.224, 0.225]
    assert len(contract["checkpoint_sha256"]) == 64 and contract["input_name"] == "images"


def test_onnx_encoder_matches_torch_encoder(exported):
    _, ckpt, onnx_path = exported
    images = [textured_tile(i, 80) for i in range(3)]
    a, b = TorchEncoder(ckpt).embed(images), OnnxEncoder(onnx_path).embed(images)
    assert a.shape == b.shape == (3, 64)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)


def test_preprocess_matches_eval_transforms():
    from geolink.data.transforms import eval_transforms

    img = (np.random.default_rng(0).random((97, 131, 3)) * 255).astype(np.uint8)
    expected = eval_transforms(56)(image=img)["image"].numpy()
    np.testing.assert_allclose(preprocess([img], 56)[0], expected, atol=1e-6)


def test_export_keeps_existing_file_and_rejects_foreign_onnx(exported, tmp_path):
    root, ckpt, onnx_path = exported
    before = onnx_path.stat().st_mtime_ns
    assert export_onnx(ckpt, onnx_path) == onnx_path and onnx_path.stat().st_mtime_ns == before
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "foreign.onnx"))
    with pytest.raises(DataError, match="not written by `geolink export`"):
        OnnxEncoder(tmp_path / "foreign.onnx")


def test_localizer_refuses_a_different_checkpoint(exported, tmp_path):
    root, ckpt, onnx_path = exported
    tile_dir, csv_path = make_tiles(tmp_path, 4)
    out = store.main(
        {}, tiles_from_folder(tile_dir, csv_path), OnnxEncoder(onnx_path), tmp_path / "idx"
    )
    other = make_checkpoint(tmp_path / "other.safetensors", seed=1)
    with pytest.raises(GeoLinkError, match="checkpoint sha256"):
        Localizer.from_paths(out, checkpoint=other)
    loc = Localizer.from_paths(out)  # the model recorded in the index (here the ONNX file)
    assert loc.backend == "onnx"
    assert loc.locate([drone_view(textured_tile(2), 0)], top_k=1)[0].matches[0].tile_id == "t002"


def test_onnx_locate_path_never_imports_torch(exported, tmp_path):
    root, ckpt, onnx_path = exported
    tile_dir, csv_path = make_tiles(tmp_path, 5)
    idx = store.main(
        {}, tiles_from_folder(tile_dir, csv_path), OnnxEncoder(onnx_path), tmp_path / "idx"
    )
    query = tile_dir / "t003.png"
    code = (
        "import sys, json\n"
        "from geolink.cli.main import main\n"
        f"rc = main(['locate', '--index', {str(idx)!r}, {str(query)!r}, '--onnx', {str(onnx_path)!r}, '--json'])\n"
        "print(json.dumps({'rc': rc, 'torch': sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:3]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    status = json.loads(lines[-1])
    assert status == {"rc": 0, "torch": []}
    assert json.loads("\n".join(lines[:-1]))[0]["matches"][0]["tile_id"] == "t003"


TRAINING_ONLY = (
    "geolink.losses",
    "geolink.models.point_nn",
    "geolink.models.point_ops",
    "geolink.models.mme",
    "geolink.models.geolink",
    "geolink.train",
    "geolink.recon",
    "geolink.config",
)
DEPLOYMENT = (
    "geolink.deploy",
    "geolink.deploy.store",
    "geolink.deploy.localizer",
    "geolink.deploy.encoders",
    "geolink.deploy.serve.app",
    "geolink.deploy.export",
    "geolink.cli.index",
    "geolink.cli.locate",
    "geolink.cli.serve",
    "geolink.cli.export",
)


def test_deployment_modules_import_no_training_code():
    code = (
        "import sys, json, importlib\n"
        f"for m in {DEPLOYMENT!r}: importlib.import_module(m)\n"
        "from geolink.deploy.encoders import TorchEncoder\n"  # building the torch encoder's deps
        "import geolink.checkpoint\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('geolink'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    mods = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert set(DEPLOYMENT) <= mods
    assert not {m for m in mods if m.startswith(TRAINING_ONLY)}


def _nan_checkpoint(src, dst):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
    sd = load_file(str(src))
    key = next(k for k in sd if k.endswith("weight") and "aggregator" in k)
    sd[key].fill_(float("nan"))
    save_file(sd, str(dst), metadata=meta)
    return dst


def test_a_nan_model_fails_parity_and_is_refused_wherever_it_embeds(exported, tmp_path, capsys):
    """#14.15: max(0.0, nan) is 0.0, so an all-NaN checkpoint exported with "0.00e+00 -> OK"."""
    from geolink.checkpoint import load_image_encoder
    from geolink.cli.main import main
    from geolink.evaluate.embed import embed_images

    root, ckpt, _ = exported
    bad = _nan_checkpoint(ckpt, tmp_path / "nan.safetensors")
    par = parity_check(bad, export_onnx(bad, tmp_path / "nan.onnx"))
    assert par["finite"] is False and par["max_abs_diff"] == float("inf")
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "cli.onnx")]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "NaN" in captured.err
    tiles, _ = make_tiles(tmp_path / "t", 2)
    images = [textured_tile(i) for i in range(2)]
    with pytest.raises(DataError, match="non-finite"):
        TorchEncoder(bad).embed(images)  # index, locate and serve embed through this
    with pytest.raises(DataError, match="non-finite"):
        OnnxEncoder(tmp_path / "nan.onnx").embed(images)
    encoder, _ = load_image_encoder(bad)
    with pytest.raises(DataError, match="NaN"):
        embed_images(encoder, sorted(tiles.glob("*.png")))  # eval (refused already before)


def test_encoder_contract_round_trip_legacy_files_and_bad_metadata():
    from geolink.deploy.contract import EncoderContract

    c = EncoderContract(backbone="b", img_size=56, out_dim=64, checkpoint_sha256="f" * 64)
    assert EncoderContract.from_metadata(c.to_metadata(), "x.onnx") == c
    # files exported before the typed contract: strings, mean/std comma-joined
    v1 = {"format": "geolink-onnx-v1", "backbone": "b", "img_size": "56", "out_dim": "64",
          "mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225",
          "checkpoint_sha256": "f" * 64, "name": "", "checkpoint": "", "exporter": ""}  # fmt: skip
    assert EncoderContract.from_metadata(v1, "old.onnx") == c
    bad = json.loads(c.to_metadata()["geolink_contract"])
    bad["std"] = [0.2, 0.0, 0.2]
    with pytest.raises(DataError, match=r"x.onnx: bad encoder contract: std=\[0.2, 0.0, 0.2\]"):
        EncoderContract.from_metadata(
            {"format": "geolink-onnx-v2", "geolink_contract": json.dumps(bad)}, "x.onnx"
        )
    with pytest.raises(DataError, match="old.onnx: metadata 'out_dim' is missing"):
        EncoderContract.from_metadata({k: v for k, v in v1.items() if k != "out_dim"}, "old.onnx")
    with pytest.raises(DataError, match="not written by `geolink export`"):
        EncoderContract.from_metadata({}, "y.onnx")
