import pytest
import torch

from geolink.config import load_config
from geolink.errors import ConfigError
from geolink.models.geolink import GeoLink
from geolink.models.image_encoder import ImageEncoder
from geolink.models.mixvpr import MixVPR
from geolink.models.mme import MME


def tiny_model(**over):
    cfg = load_config("test", [f"{k}={v}" for k, v in over.items()])
    return GeoLink(cfg.model, cfg.loss), cfg


def test_mixvpr_shape_norm_and_param_count():
    m = MixVPR(768, 32, 32, out_channels=1024, out_rows=4, mix_depth=2, mlp_ratio=1)
    # anchors §8: mix_depth 2 -> 4,994,052 parameters
    assert sum(p.numel() for p in m.parameters()) == 4_994_052
    small = MixVPR(8, 4, 4, out_channels=16, out_rows=2)
    y = small(torch.randn(3, 8, 4, 4))
    assert y.shape == (3, 32)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="expects feature maps"):
        small(torch.randn(3, 8, 5, 5))


def test_image_encoder_shapes_norms_and_frozen_sets():
    enc = ImageEncoder(backbone="test_vit", img_size=56, frozen_blocks=1, mix_out_channels=32)
    y = enc(torch.randn(2, 3, 56, 56))
    assert y.shape == (2, enc.out_dim) == (2, 128)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2))
    frozen = {n for n, p in enc.named_parameters() if not p.requires_grad}
    assert frozen and all(
        n.startswith(("backbone.model.patch_embed", "backbone.model.blocks.0.")) for n in frozen
    )
    assert any(n.startswith("backbone.model.patch_embed") for n in frozen)
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert any(n.startswith("backbone.model.blocks.1.") for n in trainable)
    assert any(n.startswith("aggregator.") for n in trainable)
    # the final norm is removed (CV-Cities): identity
    assert isinstance(enc.backbone.model.norm, torch.nn.Identity)


def test_paper_encoder_structure_without_running_it():
    enc = ImageEncoder()  # DINOv2-B @ 448, random init: build only
    assert enc.out_dim == 4096 and enc.backbone.grid == (32, 32)
    frozen_blocks = {
        n.split(".")[3]
        for n, p in enc.named_parameters()
        if not p.requires_grad and ".blocks." in n
    }
    assert frozen_blocks == {str(i) for i in range(8)}
    assert sum(p.numel() for p in enc.parameters() if p.requires_grad) > 30e6


def test_cnn_backbone_feeds_last_feature_map():
    enc = ImageEncoder(backbone="test_cnn", img_size=64, frozen_blocks=0, mix_out_channels=16)
    assert enc.backbone.grid == (2, 2)
    assert enc(torch.randn(2, 3, 64, 64)).shape == (2, 64)
    with pytest.raises(ConfigError, match="defined for ViT and EfficientNet"):
        ImageEncoder(backbone="test_cnn", img_size=64, frozen_blocks=2)


def test_unknown_backbone_lists_names():
    with pytest.raises(ConfigError, match="unknown backbone"):
        ImageEncoder(backbone="no_such_net_xyz", img_size=64)


@pytest.mark.parametrize("experts", [1, 3, 7, 15])
def test_mme_any_number_of_experts_gives_out_dim(experts):
    m = MME(in_dim=48, num_experts=experts, expert_channels=8, out_dim=32)
    y = m(torch.randn(4, 48))
    assert y.shape == (4, 32)
    assert isinstance(m.proj, torch.nn.Identity) == (experts == 3)


def test_mme_gate_weights_the_experts():
    m = MME(in_dim=12, num_experts=3, expert_channels=4, out_dim=16).eval()
    p = torch.randn(2, 12)
    g = m.gate(p).softmax(-1)
    seq = p.unsqueeze(1)
    expected = torch.cat(
        [m.experts[i](seq).squeeze(-1) * g[:, i : i + 1] for i in range(3)]
        + [m.shared(seq).squeeze(-1)],
        -1,
    )
    torch.testing.assert_close(m(p), expected)


def test_geolink_forward_returns_embeddings_and_all_terms():
    model, cfg = tiny_model()
    b = 4
    out = model(torch.randn(b, 3, 56, 56), torch.randn(b, 3, 56, 56), points=torch.randn(b, 128, 3))
    for k in ("drone_emb", "satellite_emb", "point_emb"):
        assert out[k].shape == (b, 64)
    for k in ("nce_dro_sat", "nce_dro_pc", "nce_sat_pc", "L_cc", "L_sc", "L_rd", "L_ga", "loss"):
        assert out[k].dim() == 0 and torch.isfinite(out[k])
    expected = out["L_cc"] + cfg.loss.lambda_sc * out["L_sc"] + out["L_rd"] + out["L_ga"]
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    assert model.logit_scale.grad is not None
    assert any(p.grad is not None for p in model.point_head.parameters())


def test_terms_switch_off_for_ablations_and_baseline():
    model, _ = tiny_model(
        **{"loss.use_ga": "false", "loss.use_rd": "false", "loss.use_sc": "false"}
    )
    out = model(torch.randn(4, 3, 56, 56), torch.randn(4, 3, 56, 56), points=torch.randn(4, 128, 3))
    assert not {"L_ga", "L_rd", "L_sc"} & set(out)
    torch.testing.assert_close(out["loss"], out["L_cc"])
    base, _ = tiny_model(**{"model.point.enabled": "false"})
    out = base(torch.randn(4, 3, 56, 56), torch.randn(4, 3, 56, 56))
    assert "point_emb" not in out and base.criterion.club_drone is None
    torch.testing.assert_close(out["L_cc"], out["nce_dro_sat"])


def test_cached_point_features_equal_raw_points_path():
    model, _ = tiny_model()
    model.eval()
    pts = torch.randn(4, 128, 3)
    feats = model.point_encoder(pts)
    torch.testing.assert_close(
        model.encode_points(points=pts), model.encode_points(point_features=feats)
    )


def test_point_input_norm_standardises_descriptors_that_share_a_common_part():
    # descriptors = one large common vector + small per-scene parts (what Point-NN gives on
    # similar scenes): raw they are nearly parallel; batch-standardised they are not
    torch.manual_seed(0)
    common = torch.rand(1, 72 * 16) * 10
    feats = common + 0.05 * torch.randn(8, 72 * 16)
    model, _ = tiny_model(**{"model.point.input_norm": "batch", "model.point.head": "linear"})
    model.train()
    normed = model.point_norm(feats)
    torch.testing.assert_close(normed.mean(0), torch.zeros(72 * 16), atol=1e-3, rtol=0)
    cos = torch.nn.functional.cosine_similarity
    assert cos(feats[0], feats[1], dim=0) > 0.99
    assert abs(cos(normed[0], normed[1], dim=0)) < 0.3
    assert model.encode_points(point_features=feats).shape == (8, 64)
    plain, _ = tiny_model()
    assert isinstance(plain.point_norm, torch.nn.Identity)
    with pytest.raises(ConfigError, match="input_norm"):  # at load, since #14.16
        tiny_model(**{"model.point.input_norm": "layer"})


def test_two_optimisation_steps_lower_the_total_loss():
    torch.manual_seed(0)
    model, _ = tiny_model()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    drone, sat, pts = torch.randn(4, 3, 56, 56), torch.randn(4, 3, 56, 56), torch.randn(4, 128, 3)
    feats = model.point_encoder(pts)
    losses = []
    for _ in range(3):
        out = model(drone, sat, point_features=feats)
        losses.append(out["loss"].item())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert losses[2] < losses[0]
