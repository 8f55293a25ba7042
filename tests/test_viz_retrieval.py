"""Top-k retrieval grids: layout, frame colours, CSV reading, ranking from embeddings."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from geolink.config import load_config
from geolink.data.base import RetrievalSet
from geolink.errors import DataError
from geolink.models.image_encoder import ImageEncoder
from geolink.viz.retrieval_grid import (
    GREEN,
    QUERY,
    RED,
    Hit,
    RetrievalRow,
    grid_from_checkpoint,
    grid_from_csv,
    grid_size,
    read_topk_csv,
    retrieval_grid,
    rows_from_embeddings,
    select_rows,
)

THUMB, FRAME, GAP = 40, 4, 6


def _img(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((30, 50, 3), value, np.uint8)).save(path)
    return path


def _frame_pixel(arr, row, col):
    """A pixel inside the frame (not the thumbnail) of cell (row, col)."""
    cell = THUMB + 2 * FRAME
    y = GAP + row * (cell + GAP) + FRAME // 2
    x = GAP + col * (cell + GAP) + (GAP if col > 0 else 0) + cell // 2
    return tuple(int(v) for v in arr[y, x])


def test_grid_size_formula():
    # 2 rows of 40+8 px cells with 6 px gaps; query + 3 results with one extra gap.
    assert grid_size(2, 3, THUMB, FRAME, GAP) == (6 + 2 * 54, 6 + 4 * 54 + 6)


def test_frames_green_for_correct_red_for_wrong(tmp_path):
    q = _img(tmp_path / "q.png", 30)
    g = [_img(tmp_path / f"g{i}.png", 60 * i) for i in range(3)]
    rows = [
        RetrievalRow(q, [Hit(g[0], True, 0.9), Hit(g[1], False, 0.5), Hit(g[2], False, 0.1)], "a"),
        RetrievalRow(q, [Hit(g[1], False, 0.8), Hit(g[2], True, 0.7)], "b"),
    ]
    out = retrieval_grid(rows, tmp_path / "grid.png", k=3, thumb=THUMB, frame=FRAME, gap=GAP)
    arr = np.asarray(Image.open(out).convert("RGB"))
    assert arr.shape[:2] == grid_size(2, 3, THUMB, FRAME, GAP)
    assert _frame_pixel(arr, 0, 0) == QUERY
    assert [_frame_pixel(arr, 0, c) for c in (1, 2, 3)] == [GREEN, RED, RED]
    assert [_frame_pixel(arr, 1, c) for c in (1, 2)] == [RED, GREEN]
    assert _frame_pixel(arr, 1, 3) == (255, 255, 255)  # no third result: empty
    # the thumbnail itself is drawn inside the frame (grey value 60 of g1 at row 0, col 2)
    cell = THUMB + 2 * FRAME
    y, x = GAP + FRAME + THUMB // 2, GAP + 2 * (cell + GAP) + GAP + FRAME + THUMB // 2
    assert tuple(arr[y, x]) == (60, 60, 60)


def _write_csv(path, records, columns=("query", "rank", "gallery", "score", "correct")):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(records)


def test_read_topk_csv_orders_by_rank(tmp_path):
    for name in ("q1.png", "q2.png", "a.png", "b.png"):
        _img(tmp_path / name, 100)
    _write_csv(tmp_path / "topk.csv", [
        ("q1.png", 2, "b.png", 0.5, 0), ("q1.png", 1, "a.png", 0.9, 1),
        ("q2.png", 1, "b.png", 0.7, "False"), ("q2.png", 2, "a.png", 0.6, "True"),
    ])  # fmt: skip
    rows = read_topk_csv(tmp_path / "topk.csv")
    assert [r.query.name for r in rows] == ["q1.png", "q2.png"]
    assert [(h.path.name, h.correct, h.score) for h in rows[0].hits] == [
        ("a.png", True, 0.9), ("b.png", False, 0.5)
    ]  # fmt: skip
    assert rows[0].query == tmp_path / "q1.png"
    assert [r.query.name for r in select_rows(rows, 1, "wrong")] == ["q2.png"]
    assert [r.query.name for r in select_rows(rows, 1, "correct")] == ["q1.png"]
    out = grid_from_csv(tmp_path / "topk.csv", tmp_path / "g.png", k=2, thumb=THUMB, frame=FRAME,
                        gap=GAP)  # fmt: skip
    arr = np.asarray(Image.open(out).convert("RGB"))
    assert [_frame_pixel(arr, 1, c) for c in (1, 2)] == [RED, GREEN]


def test_read_topk_csv_errors(tmp_path):
    _write_csv(tmp_path / "bad.csv", [("q", 1, "g")], columns=("query", "rank", "image"))
    with pytest.raises(DataError, match="expected columns"):
        read_topk_csv(tmp_path / "bad.csv")
    _write_csv(tmp_path / "bad2.csv", [("q", 1, "g", 0.1, "maybe")])
    with pytest.raises(DataError, match="line 2"):
        read_topk_csv(tmp_path / "bad2.csv")
    with pytest.raises(DataError, match="not found"):
        read_topk_csv(tmp_path / "missing.csv")


def test_rows_from_embeddings_by_hand(tmp_path):
    rs = RetrievalSet("d2s", ["q0", "q1"], ["a", "b"], ["ga", "gb", "gz"], ["a", "b", "z"])
    q = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.93]], np.float32)
    g = np.eye(3, dtype=np.float32)
    rows = rows_from_embeddings(rs, [0, 1], q, g, k=2)  # paper: "gz" (label z) is junk
    assert [(h.path.name, h.correct) for h in rows[1].hits] == [("gb", True), ("ga", False)]
    assert rows[0].hits[0].score == pytest.approx(1.0)
    rows = rows_from_embeddings(rs, [0, 1], q, g, k=2, protocol="official")
    assert [(h.path.name, h.correct) for h in rows[1].hits] == [("gz", False), ("gb", True)]


def test_grid_from_checkpoint(tmp_path):
    queries = [_img(tmp_path / "d" / f"{i}.png", 40 * i) for i in range(3)]
    gallery = [_img(tmp_path / "s" / f"{i}.png", 40 * i + 5) for i in range(3)]
    rs = RetrievalSet("drone2satellite", queries, ["0", "1", "2"], gallery, ["0", "1", "2"],
                      query_view="drone", gallery_view="satellite")  # fmt: skip
    torch.manual_seed(0)
    enc = ImageEncoder(load_config("test").model.image).eval()
    out = grid_from_checkpoint(enc, rs, tmp_path / "g.png", n_queries=2, k=3, select="wrong",
                               weather="fog", thumb=THUMB, frame=FRAME, gap=GAP)  # fmt: skip
    arr = np.asarray(Image.open(out).convert("RGB"))
    assert arr.shape[:2] == grid_size(2, 3, THUMB, FRAME, GAP)
    # each row: exactly one correct result among the 3 (each query's location has one tile)
    for r in range(2):
        colours = [_frame_pixel(arr, r, c) for c in (1, 2, 3)]
        assert colours.count(GREEN) == 1 and colours.count(RED) == 2


def test_csv_relative_paths(tmp_path, monkeypatch):
    data = tmp_path / "data"
    _img(data / "q.png", 10)
    _img(data / "g.png", 20)
    csv_dir = tmp_path / "eval"
    csv_dir.mkdir()
    _write_csv(csv_dir / "topk.csv", [("data/q.png", 1, "data/g.png", 0.5, 1)])
    rows = read_topk_csv(csv_dir / "topk.csv", root=tmp_path)
    assert rows[0].query == tmp_path / "data" / "q.png"
    monkeypatch.chdir(tmp_path)  # where `geolink eval` ran with a relative root
    rows = read_topk_csv(csv_dir / "topk.csv")
    assert rows[0].hits[0].path.resolve() == (data / "g.png").resolve()
