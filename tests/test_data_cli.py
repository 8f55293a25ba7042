"""``geolink data summary`` and ``geolink data weather`` through the real CLI entry point."""

from __future__ import annotations

import json

import cv2
import numpy as np

from geolink.cli.main import main


def _tree(root):
    for split, folders in (("train", ("drone", "satellite")),
                           ("test", ("query_drone", "gallery_satellite", "query_satellite", "gallery_drone"))):  # fmt: skip
        for folder in folders:
            for loc in ("0001", "0002") if split == "train" else ("0003",):
                (root / split / folder / loc).mkdir(parents=True)
                n = 2 if "drone" in folder else 1
                for i in range(n):
                    cv2.imwrite(
                        str(root / split / folder / loc / f"{i}.jpg"),
                        np.full((8, 8, 3), 50, np.uint8),
                    )
    return root


def test_summary_json_and_table(tmp_path, capsys):
    root = _tree(tmp_path / "U")
    assert main(["data", "summary", "university1652", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["complete"] is True
    assert info["splits"]["train"]["drone"] == {"locations": 2, "images": 4}
    assert info["splits"]["test"]["query_satellite"] == {"locations": 1, "images": 1}
    assert main(["data", "summary", "university1652", str(root)]) == 0
    table = capsys.readouterr().out
    assert "gallery_drone" in table and "layout complete: yes" in table


def test_summary_errors_are_one_clear_message(tmp_path, capsys):
    assert main(["data", "summary", "university1652", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Expected layout" in err and "Traceback" not in err
    root = _tree(tmp_path / "U")
    bad = root / "test/gallery_drone/0003/1.jpg"
    bad.write_bytes(b"\x00\x01broken")
    assert main(["data", "summary", "university1652", str(root)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "--skip-corrupt" in err
    # listed, not fatal, but a problem: exit status 1 (#14.9)
    assert main(["data", "summary", "university1652", str(root), "--skip-corrupt"]) == 1
    out = capsys.readouterr().out
    assert "1 unreadable image(s) skipped" in out and str(bad) in out
    assert main(["data", "summary", "university1652", str(root), "-o", "heights=150"]) == 2
    assert "unknown option" in capsys.readouterr().err


def test_summary_of_an_incomplete_tree_exits_1(tmp_path, capsys):
    """#14.9: a missing folder was printed as a problem but the exit status was 0."""
    import shutil

    root = _tree(tmp_path / "U")
    shutil.rmtree(root / "test/gallery_satellite")
    assert main(["data", "summary", "university1652", str(root)]) == 1
    captured = capsys.readouterr()
    assert "gallery_satellite" in captured.out and "1 problem(s) found" in captured.err


def test_weather_command(tmp_path, capsys):
    src = tmp_path / "drone/0001"
    src.mkdir(parents=True)
    cv2.imwrite(str(src / "a.png"), np.full((32, 32, 3), 100, np.uint8))
    assert main(["data", "weather", "fog", str(tmp_path / "drone"), str(tmp_path / "fog")]) == 0
    assert (tmp_path / "fog/0001/a.png").is_file()
    assert main(["data", "weather", "hail", str(tmp_path / "drone"), str(tmp_path / "x")]) == 2
    assert "unknown weather" in capsys.readouterr().err
