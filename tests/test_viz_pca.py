"""PCA feature maps (Figure 5): the math on hand-made features, then the figure end to end."""

import numpy as np
import pytest
import torch
from PIL import Image

from geolink.config import load_config
from geolink.errors import GeoLinkError
from geolink.models.image_encoder import ImageEncoder
from geolink.viz.pca import fit_pca, pca_figure, pca_maps, pca_rgb


@pytest.fixture(scope="module")
def encoders():
    cfg = load_config("test").model.image
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append(ImageEncoder(cfg).eval())
    return out


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"img{i}.png"
        Image.fromarray((rng.random((60, 72, 3)) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def test_fit_pca_line_and_plane():
    # Points on the line t * (3, 4, 0) / 5 plus a smaller spread along z, uncorrelated with t.
    t = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    z = np.array([0.1, -0.2, 0.0, 0.2, -0.1])
    x = np.stack([0.6 * t, 0.8 * t, z], axis=1) + np.array([1.0, 2.0, 3.0])
    basis = fit_pca(x, 3)
    np.testing.assert_allclose(basis.mean, [1.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(basis.components[0], [0.6, 0.8, 0.0], atol=1e-9)
    np.testing.assert_allclose(np.abs(basis.components[1]), [0.0, 0.0, 1.0], atol=1e-9)
    # variance along t: sum t^2 = 10; along z: sum z^2 = 0.1; third axis: none (zero row).
    np.testing.assert_allclose(basis.explained[:2], [10 / 10.1, 0.1 / 10.1], rtol=1e-9)
    np.testing.assert_array_equal(basis.components[2], 0.0)
    np.testing.assert_allclose(basis.project(x)[:, 0], t, atol=1e-9)


def test_components_are_orthonormal():
    x = np.random.default_rng(1).normal(size=(200, 16))
    c = fit_pca(x, 3).components
    np.testing.assert_allclose(c @ c.T, np.eye(3), atol=1e-10)


def test_constant_features_give_constant_map():
    fm = torch.ones(2, 8, 4, 5) * torch.arange(8.0).view(1, 8, 1, 1)
    rgb = pca_rgb(fm)
    assert rgb.shape == (2, 4, 5, 3) and rgb.dtype == np.float32
    np.testing.assert_array_equal(rgb, 0.5)


def test_two_regions_map_to_two_colours():
    a, b = torch.randn(6), torch.randn(6)
    fm = torch.empty(1, 6, 4, 4)
    fm[0, :, :, :2] = a.view(6, 1, 1)
    fm[0, :, :, 2:] = b.view(6, 1, 1)
    rgb = pca_rgb(fm, quantile=0.0)[0]
    # One axis separates the halves: its channel is 0 on one half and 1 on the other.
    assert set(np.unique(rgb[..., 0])) == {0.0, 1.0}
    assert np.all(rgb[:, :2, 0] == rgb[0, 0, 0]) and np.all(rgb[:, 2:, 0] == rgb[0, 3, 0])
    # No variance left for the other axes.
    np.testing.assert_array_equal(rgb[..., 1:], 0.5)


def test_per_image_fit_differs_from_joint():
    fm = torch.randn(2, 8, 3, 3)
    fm[1] *= 10
    joint, single = pca_rgb(fm, fit="joint"), pca_rgb(fm, fit="per_image")
    assert not np.allclose(joint, single)
    np.testing.assert_allclose(single[0], pca_rgb(fm[:1])[0], atol=1e-6)
    with pytest.raises(GeoLinkError, match="unknown PCA fit"):
        pca_rgb(fm, fit="nope")


def test_maps_are_upsampled_to_image_size(encoders):
    imgs = [np.full((30, 40, 3), 128, np.uint8), np.zeros((50, 20, 3), np.uint8)]
    maps = pca_maps(encoders[0], imgs)
    assert [m.shape for m in maps] == [(30, 40, 3), (50, 20, 3)]
    assert all(m.min() >= 0 and m.max() <= 1 for m in maps)


def test_figure_size_and_no_overwrite(encoders, images, tmp_path):
    out = tmp_path / "pca.png"
    pca_figure(images, encoders, out, labels=["A", "B"], weathers=[None, "fog"], cell_px=80)
    with Image.open(out) as im:
        assert im.format == "PNG"
        # 3 columns (image + 2 models) x 4 rows (2 images x 2 conditions) + 30 px header
        assert im.size == (3 * 80, 4 * 80 + 30)
    before = out.read_bytes()
    pca_figure(images[:1], encoders[:1], out, cell_px=50)  # exists: kept
    assert out.read_bytes() == before
    pca_figure(images[:1], encoders[:1], out, cell_px=50, overwrite=True)
    with Image.open(out) as im:
        assert im.size == (2 * 50, 50 + 30)


def test_figure_label_count_is_checked(encoders, images, tmp_path):
    with pytest.raises(GeoLinkError, match="labels"):
        pca_figure(images, encoders, tmp_path / "x.png", labels=["only one"])
