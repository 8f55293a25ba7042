"""``geolink eval`` end to end on a tiny checkpoint and folder; ``geolink table``."""

import json

import pytest

from geolink.cli.main import main


@pytest.fixture()
def checkpoint(tmp_path):
    from geolink.checkpoint import save_model
    from geolink.config import load_config, to_yaml
    from geolink.models.geolink import GeoLink

    cfg = load_config("test")
    model = GeoLink(cfg.model, cfg.loss).eval()
    return save_model(model, tmp_path / "run" / "best.safetensors", to_yaml(cfg))


def test_geolink_eval_cli(tmp_path, checkpoint, capsys):
    from test_eval_evaluator import make_u1652  # pytest puts tests/ on sys.path

    root = make_u1652(tmp_path / "u", n_drone=2)
    out = tmp_path / "ev"
    argv = [
        "eval",
        "--checkpoint",
        str(checkpoint),
        "--dataset",
        "university1652",
        "--root",
        str(root),
        "--weather",
        "wind",
        "--out",
        str(out),
        "--batch-size",
        "4",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "drone2satellite" in text and "wind" in text
    recs = json.loads((out / "metrics.json").read_text())
    assert {(r["set"], r["condition"]) for r in recs} == {
        (s, c) for s in ("drone2satellite", "satellite2drone") for c in ("clean", "wind")
    }
    for r in recs:
        assert 0.0 <= r["metrics"]["R@1"] <= r["metrics"]["R@5"] <= 100.0
    # 4 folders clean, of which two hold byte-identical images (embedded once), + the 2 drone
    # folders under wind (weather is keyed by path); satellites are never weathered
    assert len(list((out / "embeddings").glob("*.npy"))) == 5


def test_geolink_eval_cli_user_errors(tmp_path, checkpoint, capsys):
    base = ["eval", "--checkpoint", str(checkpoint), "--dataset", "university1652"]
    assert main([*base, "--root", str(tmp_path / "missing")]) == 2
    assert "university1652" in capsys.readouterr().err
    assert main([*base, "--root", str(tmp_path), "--weather", "hail"]) == 2
    assert "unknown weather 'hail'" in capsys.readouterr().err


def test_eval_into_a_folder_of_another_checkpoint_is_refused_not_mixed(
    tmp_path, checkpoint, capsys
):
    """#14.8: records were keyed by (set, condition, protocol) only, so evaluating another
    checkpoint into the same --out silently kept the first checkpoint's numbers."""
    import torch
    from test_eval_evaluator import make_u1652

    from geolink.checkpoint import save_model
    from geolink.config import load_config, to_yaml
    from geolink.models.geolink import GeoLink

    torch.manual_seed(123)
    cfg = load_config("test")
    other = save_model(
        GeoLink(cfg.model, cfg.loss).eval(), tmp_path / "b.safetensors", to_yaml(cfg)
    )
    root = make_u1652(tmp_path / "u", n_drone=2)
    out = tmp_path / "ev"
    common = ["--dataset", "university1652", "--root", str(root), "--out", str(out)]
    assert main(["eval", "--checkpoint", str(checkpoint), *common]) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert main(["eval", "--checkpoint", str(checkpoint), *common]) == 0  # same model: reused
    assert json.loads((out / "metrics.json").read_text()) == first
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(other), *common]) == 2
    assert "another evaluation" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text()) == first  # nothing lost
    assert main(["eval", "--checkpoint", str(other), *common, "--overwrite"]) == 0
    recs = json.loads((out / "metrics.json").read_text())
    models = {r["source"]["model"] for r in recs if "source" in r}
    assert len(models) == 1 and models != {r["source"]["model"] for r in first if "source" in r}


def test_eval_with_a_file_name_that_is_not_utf8(tmp_path, checkpoint):
    """#14.17: a non-UTF-8 file name crashed eval (UnicodeEncodeError in the embedding cache
    key, then in the top-k CSV)."""
    import os

    from test_eval_evaluator import make_u1652

    root = make_u1652(tmp_path / "u", n_drone=2)
    folder = next((root / "test" / "query_drone").iterdir())
    image = next(folder.iterdir())
    os.rename(os.fsencode(image), os.fsencode(folder) + b"/caf\xe9.jpg")  # latin-1 byte
    out = tmp_path / "ev"
    argv = ["eval", "--checkpoint", str(checkpoint), "--dataset", "university1652",
            "--root", str(root), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    csv_bytes = b"".join(p.read_bytes() for p in out.glob("topk_*.csv"))
    assert b"caf\xe9.jpg" in csv_bytes  # the real name, byte for byte


def test_default_eval_folder_is_run_eval_dataset(tmp_path):
    """#11: one convention, RUN/eval/<name> (the CLI used to write RUN/checkpoints/eval_<ds>)."""
    from pathlib import Path

    from geolink.cli.eval import default_eval_dir

    run = tmp_path / "run"
    assert default_eval_dir(run / "checkpoints" / "best.safetensors", "sues200") == (
        run.resolve() / "eval" / "sues200"
    )
    loose = Path(tmp_path / "models" / "m.safetensors")
    assert default_eval_dir(loose, "u1652") == (tmp_path / "models").resolve() / "eval" / "u1652"
