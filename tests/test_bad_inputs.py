"""#14.16: artefacts of the wrong shape and out-of-range options are clear errors (exit 2, the
file or option named), never a traceback from deep inside."""

import json

import pytest

from geolink.cli.main import main
from geolink.errors import DataError, GeoLinkError


@pytest.fixture()
def checkpoint(tmp_path):
    from geolink.testing.deploy import make_checkpoint

    return make_checkpoint(tmp_path / "tiny.safetensors")


def test_checkpoint_whose_config_does_not_fit_its_tensors(checkpoint, tmp_path):
    """'size mismatch for aggregator.channel_proj.weight' came out as a RuntimeError."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from geolink.checkpoint import load_image_encoder

    with safe_open(str(checkpoint), framework="pt") as f:
        meta = f.metadata()
    for old, new, match in (
        ("mix_out_channels: 32", "mix_out_channels: 48", "do not match the checkpoint's own"),
        ("img_size: 56", "img_size: 200000", r"img_size=200000 \(expected"),
    ):
        assert old in meta["config"]
        bad = tmp_path / "bad.safetensors"
        save_file(
            load_file(str(checkpoint)),
            str(bad),
            {**meta, "config": meta["config"].replace(old, new)},
        )
        with pytest.raises(GeoLinkError, match=match):
            load_image_encoder(bad)


def _index(tmp_path, checkpoint):
    from geolink.deploy import store, tiles_from_folder
    from geolink.deploy.encoders import TorchEncoder
    from geolink.testing.deploy import make_tiles

    tiles, csv_path = make_tiles(tmp_path, 2)
    return store.main(
        {}, tiles_from_folder(tiles, csv_path), TorchEncoder(checkpoint), tmp_path / "index"
    )


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda m: [m], "expected a JSON object, found list"),
        (lambda m: {**m, "tiles": {"a": 1}}, "'tiles' must be a list"),
        (lambda m: {**m, "model": {**m["model"], "out_dim": "64"}}, "integer 'out_dim'"),
    ],
    ids=["list", "tiles_not_list", "out_dim_string"],
)
def test_index_meta_of_the_wrong_shape(tmp_path, checkpoint, edit, match):
    """A meta.json of the wrong shape gave "'list' object has no attribute 'get'"."""
    from geolink.deploy.store import TileIndex

    out = _index(tmp_path, checkpoint)
    meta_path = out / "meta.json"
    meta_path.write_text(json.dumps(edit(json.loads(meta_path.read_text()))))
    with pytest.raises(DataError, match=match):
        TileIndex.load(out)


def test_a_manifest_that_is_a_list(tmp_path):
    from geolink.recon.features import cache_point_features

    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="corrupt manifest"):
        cache_point_features(tmp_path)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", "not a text CSV"),
        (b"name,lat,lon,footprint_m\na,1,2,-5\n", "footprint_m must be a positive"),
        (b"name,lat,lon,footprint_m\na,1,2,nan\n", "footprint_m must be a positive"),
        (b"name,lat,lon\na,999,2\n", "out of range"),
        (b"name,lat,lon\na,north,2\n", "must be numbers"),
    ],
    ids=["binary", "negative_footprint", "nan_footprint", "lat_999", "text_lat"],
)
def test_bad_coordinate_csvs(tmp_path, content, match):
    from geolink.deploy.geo import read_coords_csv

    path = tmp_path / "coords.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_coords_csv(path)


@pytest.mark.parametrize(
    "flags,named",
    [
        (["--batch-size", "0"], "batch_size=0"),
        (["--workers", "-1"], "workers=-1"),
        (["--topk", "-5"], "topk=-5"),
        (["--device", "banana"], "--device 'banana'"),
    ],
    ids=["batch0", "workers", "topk", "device"],
)
def test_eval_options_out_of_range(tmp_path, checkpoint, capsys, flags, named):
    argv = ["eval", "--checkpoint", str(checkpoint), "--dataset", "university1652",
            "--root", str(tmp_path), *flags]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


@pytest.mark.parametrize(
    "tensor,match",
    [("int", "dtype torch.int64, expected float"), ("matrix", "not a finite 1-D vector")],
)
def test_point_features_of_the_wrong_dtype_or_shape(tmp_path, tensor, match):
    import torch
    from safetensors.torch import save_file

    from geolink.recon.features import load_point_features

    value = torch.arange(1152) if tensor == "int" else torch.zeros(2, 576)
    save_file({"0001": value}, str(tmp_path / "point_features.safetensors"))
    with pytest.raises(DataError, match=match):
        load_point_features(tmp_path)
