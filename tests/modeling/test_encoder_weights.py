"""Loading a pretraining encoder export (timm key names) into the detection ViT."""
from __future__ import annotations

import logging

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer

from dama_det import DamaUserError, get_dama_cfg
from dama_det.encoder_export.format import save_encoder_export
from dama_det.modeling import load_encoder_into_vit
from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
from dama_det.pretrain.export import export_pretrainer
from dama_det.pretrain.models_mae import mae_config

DEPTH, DIM, HEADS = 2, 64, 2


def make_export(path, *, img_size=128, in_chans=7, embed_dim=DIM, depth=DEPTH):
    torch.manual_seed(1)
    timm_vit = VisionTransformer(
        img_size=img_size, patch_size=16, in_chans=in_chans, embed_dim=embed_dim,
        depth=depth, num_heads=HEADS, num_classes=0,
    )
    with torch.no_grad():  # make every tensor distinctive (timm inits some to 0/1)
        for p in timm_vit.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = timm_vit.state_dict()
    save_encoder_export(
        path, state, img_size=img_size, patch_size=16, in_chans=in_chans,
        embed_dim=embed_dim, depth=depth, num_heads=HEADS,
    )
    return state


def detection_cfg(channels=7, pretrain_img_size=256, weights=""):
    cfg = get_dama_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_dama_vit_fpn_backbone"
    cfg.MODEL.PIXEL_MEAN = [0.0] * channels
    cfg.MODEL.PIXEL_STD = [1.0] * channels
    cfg.MODEL.DAMA_VIT.merge_from_list(
        ["EMBED_DIM", DIM, "DEPTH", DEPTH, "NUM_HEADS", HEADS, "GLOBAL_BLOCK_INDEXES", [1],
         "WINDOW_SIZE", 8, "OUT_CHANNELS", 32, "IMG_SIZE", 256,
         "PRETRAIN_IMG_SIZE", pretrain_img_size, "ENCODER_WEIGHTS", str(weights)]
    )
    return cfg


def test_export_128_loads_into_256_detector_with_resampled_pos_embed(tmp_path, caplog):
    src = make_export(tmp_path / "enc.pth", img_size=128)
    cfg = detection_cfg(pretrain_img_size=256, weights=tmp_path / "enc.pth")
    with caplog.at_level(logging.INFO, logger="dama_det.modeling.encoder_weights"):
        vit = build_backbone(cfg, ShapeSpec(channels=7)).net
    got = vit.state_dict()
    # every block / patch-embedding tensor equals the source exactly
    for key, value in src.items():
        if key in ("cls_token", "pos_embed", "norm.weight", "norm.bias"):
            continue
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
    # pos_embed: cls entry kept, 8x8 grid resampled to 16x16 with timm
    expected = resample_abs_pos_embed(src["pos_embed"][:, 1:], [16, 16], [8, 8],
                                      num_prefix_tokens=0)
    assert got["pos_embed"].shape == (1, 1 + 256, DIM)
    torch.testing.assert_close(got["pos_embed"][:, 1:], expected)
    torch.testing.assert_close(got["pos_embed"][:, :1], src["pos_embed"][:, :1])
    log = caplog.text
    assert "resampled from grid (8, 8) to (16, 16)" in log
    assert "MISSING" not in log and "rel_pos_h" in log and "cls_token" in log


def test_report_lists_zero_missing_and_same_grid_is_exact(tmp_path):
    src = make_export(tmp_path / "enc.pth", img_size=128)
    cfg = detection_cfg(pretrain_img_size=128)
    vit = build_backbone(cfg, ShapeSpec(channels=7)).net
    report = load_encoder_into_vit(vit, tmp_path / "enc.pth")
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert report.resampled_pos_embed is None
    assert sorted(report.unused) == ["cls_token", "norm.bias", "norm.weight"]
    assert all("rel_pos" in k for k in report.new) and len(report.new) == 2 * DEPTH
    assert len(report.loaded) == len(src) - 3
    torch.testing.assert_close(vit.pos_embed, src["pos_embed"], rtol=0, atol=0)


def test_export_without_cls_position_loads(tmp_path):
    """Exports whose pos_embed has no cls entry (1, L, D) load; the unused cls slot is 0."""
    src = make_export(tmp_path / "full.pth")
    state = dict(src)
    state["pos_embed"] = src["pos_embed"][:, 1:]
    save_encoder_export(tmp_path / "nocls.pth", state, img_size=128, patch_size=16, in_chans=7,
                        embed_dim=DIM, depth=DEPTH, num_heads=HEADS)
    vit = build_backbone(detection_cfg(pretrain_img_size=128), ShapeSpec(channels=7)).net
    load_encoder_into_vit(vit, tmp_path / "nocls.pth")
    torch.testing.assert_close(vit.pos_embed[:, 1:], src["pos_embed"][:, 1:], rtol=0, atol=0)
    assert torch.count_nonzero(vit.pos_embed[:, 0]) == 0


def test_pretrain_img_size_zero_takes_the_exports(tmp_path):
    from dama_det.modeling.vit_backbone import resolve_pretrain_img_size

    src = make_export(tmp_path / "enc.pth", img_size=96)
    cfg = detection_cfg(pretrain_img_size=0, weights=tmp_path / "enc.pth")
    vit = build_backbone(cfg, ShapeSpec(channels=7)).net
    torch.testing.assert_close(vit.pos_embed, src["pos_embed"], rtol=0, atol=0)  # 6x6 grid
    assert resolve_pretrain_img_size(cfg) == 96 and cfg.MODEL.DAMA_VIT.PRETRAIN_IMG_SIZE == 96
    assert resolve_pretrain_img_size(detection_cfg(pretrain_img_size=0)) == 256  # IMG_SIZE


def test_loaded_backbone_differs_from_random_init(tmp_path):
    make_export(tmp_path / "enc.pth")
    torch.manual_seed(0)
    plain = build_backbone(detection_cfg(), ShapeSpec(channels=7))
    torch.manual_seed(0)
    loaded = build_backbone(detection_cfg(weights=tmp_path / "enc.pth"), ShapeSpec(channels=7))
    x = torch.rand(1, 7, 64, 64)
    assert not torch.allclose(plain(x)["p4"], loaded(x)["p4"])


@pytest.mark.parametrize(
    "kwargs, channels, pattern",
    [
        ({"in_chans": 3}, 7,
         r"patch_embed\.proj\.weight: export \(64, 3, 16, 16\) vs model \(64, 7"),
        ({"embed_dim": 96}, 7, r"embed_dim=96"),
        ({"depth": 3}, 7, r"blocks\.2\.[a-z0-9_.]+ \(unexpected\)"),
        ({}, 1, r"in_chans=7"),
    ],
)
def test_mismatched_export_fails_loudly(tmp_path, kwargs, channels, pattern):
    make_export(tmp_path / "enc.pth", **kwargs)
    cfg = detection_cfg(channels=channels, weights=tmp_path / "enc.pth")
    with pytest.raises(DamaUserError, match=pattern):
        build_backbone(cfg, ShapeSpec(channels=channels))


def test_shallower_export_reports_missing_blocks(tmp_path):
    make_export(tmp_path / "enc.pth", depth=1)
    with pytest.raises(DamaUserError, match=r"blocks\.1\.[a-z0-9_.]+ \(missing\)"):
        build_backbone(detection_cfg(weights=tmp_path / "enc.pth"), ShapeSpec(channels=7))


def test_missing_export_file_is_a_user_error(tmp_path):
    with pytest.raises(DamaUserError, match="no such weights file"):
        build_backbone(detection_cfg(weights=tmp_path / "nope.pth"), ShapeSpec(channels=7))


def test_skip_keys_keep_the_vits_own_initialisation(tmp_path):
    src = make_export(tmp_path / "enc.pth", img_size=128)
    cfg = detection_cfg(pretrain_img_size=128, weights=tmp_path / "enc.pth")
    cfg.MODEL.DAMA_VIT.ENCODER_SKIP_KEYS = ["pos_embed"]
    torch.manual_seed(5)
    vit = build_backbone(cfg, ShapeSpec(channels=7)).net
    torch.manual_seed(5)
    plain = build_backbone(detection_cfg(pretrain_img_size=128), ShapeSpec(channels=7)).net
    # pos_embed stays detectron2's trunc-normal init; everything else comes from the export
    torch.testing.assert_close(vit.pos_embed, plain.pos_embed, rtol=0, atol=0)
    assert not torch.equal(vit.pos_embed, src["pos_embed"])
    torch.testing.assert_close(vit.state_dict()["patch_embed.proj.weight"],
                               src["patch_embed.proj.weight"], rtol=0, atol=0)
    report = load_encoder_into_vit(plain, tmp_path / "enc.pth", skip=["pos_embed"])
    assert report.kept_init == ["pos_embed"] and "pos_embed" not in report.loaded
    assert "kept at init (1): pos_embed" in report.summary()
    with pytest.raises(DamaUserError, match="ENCODER_SKIP_KEYS: pos_embd matches no key"):
        load_encoder_into_vit(plain, tmp_path / "enc.pth", skip=["pos_embd"])


def test_skip_patterns_keep_every_matching_key_at_init(tmp_path):
    src = make_export(tmp_path / "enc.pth", img_size=128)
    torch.manual_seed(5)
    plain = build_backbone(detection_cfg(pretrain_img_size=128), ShapeSpec(channels=7)).net
    init = {k: v.clone() for k, v in plain.state_dict().items()}
    report = load_encoder_into_vit(plain, tmp_path / "enc.pth", skip=["blocks.*"])
    # rel_pos: not in exports
    block_keys = [k for k in init if k.startswith("blocks.") and "rel_pos" not in k]
    assert sorted(report.kept_init) == sorted(block_keys) and len(block_keys) > 10
    assert not any(k.startswith("blocks.") for k in report.loaded)
    # every block tensor still at detectron2's init
    for key in (k for k in init if k.startswith("blocks.")):
        torch.testing.assert_close(plain.state_dict()[key], init[key], rtol=0, atol=0)
    torch.testing.assert_close(plain.state_dict()["patch_embed.proj.weight"],
                               src["patch_embed.proj.weight"], rtol=0, atol=0)
    with pytest.raises(DamaUserError, match=r"ENCODER_SKIP_KEYS: block\.\* matches no key"):
        load_encoder_into_vit(plain, tmp_path / "enc.pth", skip=["pos_embed", "block.*"])


#: per weight init, which of three tensors an untrained export has at detectron2's scale
_AT_DETECTRON2_SCALE = {
    "xavier": {"qkv": False, "fc2": False, "patch": False},
    "trunc_normal": {"qkv": True, "fc2": True, "patch": True},
    "xavier_small_residual": {"qkv": False, "fc2": True, "patch": False},
}


@pytest.mark.parametrize("weight_init", list(_AT_DETECTRON2_SCALE))
def test_untrained_export_weight_scale_against_detectron2_init(tmp_path, weight_init):
    """``--weight-init trunc_normal`` gives an untrained export with detectron2's own init
    scale (Linear std 0.02, the conv default for the patch embedding); MAE's xavier init
    is 2-3x larger for these widths; ``xavier_small_residual`` is MAE's but for the blocks'
    residual outputs (``attn.proj``, ``mlp.fc2``)."""
    torch.manual_seed(0)
    cfg = mae_config("mini", img_size=128, in_chans=7, weight_init=weight_init)
    export_pretrainer(DAMAPretrainer(cfg, MethodConfig(method="mae")), tmp_path / "enc.pth")
    dcfg = detection_cfg(pretrain_img_size=128, weights=tmp_path / "enc.pth")
    dcfg.MODEL.DAMA_VIT.merge_from_list(["EMBED_DIM", 128, "DEPTH", 4, "NUM_HEADS", 4,
                                         "GLOBAL_BLOCK_INDEXES", [3]])
    loaded = build_backbone(dcfg, ShapeSpec(channels=7)).net.state_dict()
    dcfg.MODEL.DAMA_VIT.ENCODER_WEIGHTS = ""
    plain = build_backbone(dcfg, ShapeSpec(channels=7)).net.state_dict()
    keys = {"qkv": "blocks.0.attn.qkv.weight", "fc2": "blocks.3.mlp.fc2.weight",
            "patch": "patch_embed.proj.weight"}
    for name, key in keys.items():
        ratio = loaded[key].std().item() / plain[key].std().item()
        if _AT_DETECTRON2_SCALE[weight_init][name]:
            assert 0.9 < ratio < 1.1, (key, ratio)
        else:
            assert ratio > 1.5, (key, ratio)
