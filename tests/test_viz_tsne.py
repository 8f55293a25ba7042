"""t-SNE of drone/satellite embeddings (Figure 6)."""

import numpy as np
import pytest
import torch
from PIL import Image

from geolink.config import load_config
from geolink.data.base import RetrievalSet
from geolink.errors import GeoLinkError
from geolink.models.image_encoder import ImageEncoder
from geolink.viz.tsne import (
    TsnePanel,
    select_locations,
    top1_wrong,
    tsne_2d,
    tsne_figure,
    tsne_from_checkpoints,
    tsne_panel,
)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return ImageEncoder(load_config("test").model.image).eval()


@pytest.fixture
def retrieval_set(tmp_path):
    """4 locations x 3 drone images, 4 satellite tiles + 1 distractor tile (no queries)."""
    rng = np.random.default_rng(0)
    queries, q_labels, gallery, g_labels = [], [], [], []
    for loc in ("0001", "0002", "0003", "0004", "0009"):
        base = rng.integers(0, 255, size=(1, 1, 3))
        for i in range(0 if loc == "0009" else 3):
            p = tmp_path / "drone" / loc / f"image-{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            noise = rng.integers(-40, 40, size=(40, 40, 3))
            Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(p)
            queries.append(p)
            q_labels.append(loc)
        p = tmp_path / "satellite" / loc / f"{loc}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.broadcast_to(base, (40, 40, 3)).astype(np.uint8)).save(p)
        gallery.append(p)
        g_labels.append(loc)
    return RetrievalSet(
        "drone2satellite", queries, q_labels, gallery, g_labels,
        query_view="drone", gallery_view="satellite",
    )  # fmt: skip


def test_tsne_rows_and_determinism():
    emb = np.random.default_rng(0).normal(size=(7, 16)).astype(np.float32)
    a, b = tsne_2d(emb, seed=3), tsne_2d(emb, seed=3)
    assert a.shape == (7, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(GeoLinkError, match="at least 3"):
        tsne_2d(emb[:2])


def test_tsne_separates_two_clusters():
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 0.05, (6, 8)), rng.normal(5, 0.05, (6, 8))])
    xy = tsne_2d(emb, perplexity=3)
    within = np.linalg.norm(xy[:6] - xy[:6].mean(0), axis=1).max()
    between = np.linalg.norm(xy[:6].mean(0) - xy[6:].mean(0))
    assert between > 2 * within


def test_select_locations():
    q, g = ["a", "b", "c", "c", ""], ["a", "b", "c", "d"]
    assert select_locations(q, g, 10) == ["a", "b", "c"]
    two = select_locations(q, g, 2, seed=1)
    assert len(two) == 2 and two == sorted(two) and set(two) <= {"a", "b", "c"}
    assert two == select_locations(q, g, 2, seed=1)
    with pytest.raises(GeoLinkError):
        select_locations(["x"], ["y"], 3)


def test_top1_wrong_by_hand():
    gallery = np.eye(3, dtype=np.float32)  # labels a, b, junk
    queries = np.array([[0.9, 0.1, 0], [0.9, 0.1, 0], [0.1, 0.2, 0.97]], np.float32)
    q_labels, g_labels = ["a", "b", "b"], ["a", "b", "z"]
    # paper protocol drops "z" (no query has it): query 2 then matches "b".
    np.testing.assert_array_equal(top1_wrong(queries, q_labels, gallery, g_labels), [0, 1, 0])
    np.testing.assert_array_equal(
        top1_wrong(queries, q_labels, gallery, g_labels, protocol="official"), [0, 1, 1]
    )


def test_panel_has_one_row_per_embedding(encoder, retrieval_set):
    panel = tsne_panel(encoder, retrieval_set, ["0001", "0003"], "m", max_drone=2)
    assert panel.coords.shape == (2 * 2 + 2, 2)
    assert panel.views == ["drone"] * 4 + ["satellite"] * 2
    assert panel.locations == ["0001", "0001", "0003", "0003", "0001", "0003"]
    assert panel.wrong.shape == (6,) and not panel.wrong[4:].any()


def test_figure_from_checkpoints(encoder, retrieval_set, tmp_path):
    torch.manual_seed(1)
    other = ImageEncoder(load_config("test").model.image).eval()
    out = tsne_from_checkpoints(
        retrieval_set, [encoder, other], tmp_path / "tsne.png", labels=["A", "B"], n_locations=3
    )
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (2 * 480, 480 + 60)


def _blue_pixels(path) -> int:
    arr = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(((arr[..., 2] > 200) & (arr[..., 0] < 60) & (arr[..., 1] < 60)).sum())


def test_figure_marks_wrong_samples_in_blue(tmp_path):
    coords = np.array([[0, 0], [1, 1], [2, 0], [5, 5]], np.float32)
    panel = TsnePanel(
        "p", coords, ["a", "a", "b", "b"], ["drone", "satellite", "drone", "satellite"],
        np.array([False, False, False, False]),
    )  # fmt: skip
    clean = tsne_figure([panel], tmp_path / "clean.png", cell_px=300)
    with Image.open(clean) as im:
        assert im.size == (300, 360)
    panel.wrong[2] = True
    marked = tsne_figure([panel], tmp_path / "marked.png", cell_px=300)
    # the legend has one blue circle in both; the wrong drone point adds a second one
    assert _blue_pixels(marked) > _blue_pixels(clean) + 50
