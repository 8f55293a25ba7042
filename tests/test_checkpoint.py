import pytest
import torch

from geolink.checkpoint import load_image_encoder, save_model
from geolink.config import load_config, to_yaml
from geolink.errors import GeoLinkError
from geolink.models.backbones import WeightsError
from geolink.models.geolink import GeoLink
from geolink.models.image_encoder import ImageEncoder


def test_safetensors_round_trip_rebuilds_the_encoder(tmp_path):
    cfg = load_config("test")
    model = GeoLink(cfg.model, cfg.loss).eval()
    path = save_model(model, tmp_path / "ckpt" / "model.safetensors", to_yaml(cfg), {"epoch": 3})
    enc, meta = load_image_encoder(path)
    x = torch.randn(2, 3, 56, 56)
    torch.testing.assert_close(enc(x), model.encode_image(x))
    assert meta["extra"] == {"epoch": 3} and len(meta["sha256"]) == 64


def test_shared_club_weights_are_saved(tmp_path):
    cfg = load_config("test", ["loss.club_shared=true"])
    model = GeoLink(cfg.model, cfg.loss)
    assert model.criterion.club_drone is model.criterion.club_satellite
    save_model(model, tmp_path / "m.safetensors", to_yaml(cfg))
    assert (tmp_path / "m.safetensors").stat().st_size > 0


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(GeoLinkError, match="not found"):
        load_image_encoder(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(GeoLinkError, match="bad.safetensors"):
        load_image_encoder(bad)


def _to_dinov2_original(sd, grid):
    """Rewrite a timm DINOv2 state dict into the original DINOv2 checkpoint form: mask_token,
    positional embedding at another grid size (518 px in the real file)."""
    out = dict(sd)
    dim = sd["cls_token"].shape[-1]
    out["mask_token"] = torch.zeros(1, dim)
    pos = sd["pos_embed"]
    cls, patches = pos[:, :1], pos[:, 1:]
    n = int(patches.shape[1] ** 0.5)
    patches = patches.reshape(1, n, n, dim).permute(0, 3, 1, 2)
    patches = torch.nn.functional.interpolate(patches, size=(grid, grid), mode="bicubic")
    out["pos_embed"] = torch.cat([cls, patches.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)], 1)
    return out


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loads_original_dinov2_style_state_dict(tmp_path, suffix):
    torch.manual_seed(0)
    import timm

    from geolink.models.backbones import ALIASES

    spec = ALIASES.get("test_vit")
    src = timm.create_model(spec.timm_name, img_size=56, num_classes=0, **spec.kwargs)
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    assert "norm.weight" in sd  # real DINOv2 files carry the final norm; we drop it
    original = _to_dinov2_original(sd, grid=6)
    path = tmp_path / f"dinov2_test{suffix}"
    if suffix == ".pth":
        torch.save(original, path)
    else:
        from safetensors.torch import save_file

        save_file(original, str(path))
    enc = ImageEncoder(
        backbone="test_vit", img_size=56, pretrained=str(path), frozen_blocks=0, mix_out_channels=16
    )
    got = enc.backbone.model.state_dict()
    torch.testing.assert_close(got["blocks.1.attn.qkv.weight"], sd["blocks.1.attn.qkv.weight"])
    torch.testing.assert_close(got["patch_embed.proj.weight"], sd["patch_embed.proj.weight"])
    assert got["pos_embed"].shape == sd["pos_embed"].shape  # resampled 6x6 -> 4x4 grid


def test_missing_local_weights_and_offline_hub_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="not found"):
        ImageEncoder(backbone="test_vit", img_size=56, pretrained=str(tmp_path / "nope.pth"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE"):
        ImageEncoder(
            backbone="vit_small_patch14_dinov2", img_size=56, pretrained="timm", frozen_blocks=0
        )


def test_the_run_name_is_read_from_the_parsed_config(tmp_path):
    """#11: the name used to be scanned from the YAML text line by line (a quoted name kept
    its YAML escaping, a folded one came back as '>-')."""
    from geolink.checkpoint import load_image_encoder, save_model
    from geolink.config import load_config, to_yaml
    from geolink.models.geolink import GeoLink

    cfg = load_config("test", ["model.point.enabled=false"])
    cfg.name = "it's: a run"
    text = to_yaml(cfg)
    assert "name: 'it''s: a run'" in text or 'name: "it\'s: a run"' in text
    path = save_model(GeoLink(cfg.model, cfg.loss), tmp_path / "m.safetensors", text)
    assert load_image_encoder(path)[1]["name"] == "it's: a run"
