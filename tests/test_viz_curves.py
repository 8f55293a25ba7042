"""Loss curves from metrics.jsonl (Figure 4)."""

import json

import numpy as np
import pytest
from PIL import Image

from geolink.cli.main import main
from geolink.errors import DataError, GeoLinkError
from geolink.viz.curves import ema_smooth, loss_curves, read_train_metrics, series


def _write_run(folder, n_steps=20, with_ga=True, truncated=False):
    folder.mkdir(parents=True)
    lines = []
    for step in range(1, n_steps + 1):
        rec = {"kind": "train", "epoch": (step - 1) // 10, "step": step, "lr": 1e-3,
               "loss": 10.0 / step, "nce_dro_pc": 5.0 / step, "nce_sat_pc": 4.0 / step}  # fmt: skip
        if with_ga:
            rec["L_ga"] = 0.1
        lines.append(json.dumps(rec))
        if step % 10 == 0:
            lines.append(json.dumps({"kind": "epoch", "epoch": step // 10 - 1, "seconds": 1.0}))
    text = "\n".join(lines) + "\n"
    if truncated:
        text += '{"kind": "train", "ste'
    (folder / "metrics.jsonl").write_text(text)
    return folder


def test_ema_by_hand():
    # w = 0.5: s1 = 0.5 -> 0.5 / 0.5 = 1; s2 = 0.25 + 1.5 = 1.75 -> 1.75 / 0.75 = 7/3
    np.testing.assert_allclose(ema_smooth([1.0, 3.0], 0.5), [1.0, 7 / 3])
    np.testing.assert_array_equal(ema_smooth([4.0, 1.0, 2.0], 0.0), [4.0, 1.0, 2.0])
    out = ema_smooth([1.0, np.nan, 3.0], 0.5)
    assert np.isnan(out[1]) and out[2] == pytest.approx(7 / 3)
    with pytest.raises(GeoLinkError):
        ema_smooth([1.0], 1.0)


def test_read_train_rows_only_and_truncated_tail(tmp_path):
    run = _write_run(tmp_path / "run", n_steps=20, truncated=True)
    rows = read_train_metrics(run)
    assert len(rows) == 20 and all(r["kind"] == "train" for r in rows)
    steps, values = series(rows, "nce_dro_pc")
    np.testing.assert_array_equal(steps, np.arange(1, 21))
    np.testing.assert_allclose(values, 5.0 / np.arange(1, 21))


def test_malformed_middle_line_is_an_error(tmp_path):
    run = tmp_path / "bad"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 1}\nnot json\n{}\n')
    with pytest.raises(DataError, match="line 2"):
        read_train_metrics(run)
    with pytest.raises(DataError, match="no metrics file"):
        read_train_metrics(tmp_path / "missing")


def test_series_last_record_wins_on_repeated_step():
    rows = [{"step": 2, "loss": 5.0}, {"step": 1, "loss": 9.0}, {"step": 2, "loss": 4.0}, {"x": 1}]
    steps, values = series(rows, "loss")
    np.testing.assert_array_equal(steps, [1, 2])
    np.testing.assert_array_equal(values, [9.0, 4.0])


def test_curves_png_size_and_missing_keys(tmp_path):
    a = _write_run(tmp_path / "with_ga")
    b = _write_run(tmp_path / "without_ga", with_ga=False)
    out = loss_curves([a, b], tmp_path / "c.png", keys=["nce_dro_pc", "nce_sat_pc", "nope"],
                      cell_px=(300, 200))  # fmt: skip
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (2 * 300, 200)  # "nope" is left out
    with pytest.raises(DataError, match="available: .*nce_dro_pc"):
        loss_curves([a], tmp_path / "d.png", keys=["nope"])


def test_cli_curves(tmp_path, capsys):
    a = _write_run(tmp_path / "with_ga")
    b = _write_run(tmp_path / "without_ga", with_ga=False)
    out = tmp_path / "fig4.png"
    argv = ["visualize", "curves", str(a), str(b), "--label", "w/ L_ga", "--label", "w/o L_ga",
            "--keys", "nce_dro_pc,nce_sat_pc,loss", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    with Image.open(out) as im:
        assert im.size == (3 * 420, 340)
    capsys.readouterr()
    assert main(argv) == 0  # exists: kept
    assert "kept existing" in capsys.readouterr().out
    other = tmp_path / "other.png"
    assert main(["visualize", "curves", str(tmp_path / "nothing"), "--out", str(other)]) == 2
    assert "no metrics file" in capsys.readouterr().err
    assert not other.exists()
