"""The registered DAMA ViT + simple-feature-pyramid backbone, built from config."""
from __future__ import annotations

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone
from detectron2.modeling.backbone import SimpleFeaturePyramid, ViT

from dama_det import DamaUserError, get_dama_cfg


def tiny_cfg(channels: int):
    cfg = get_dama_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_dama_vit_fpn_backbone"
    cfg.MODEL.PIXEL_MEAN = [0.0] * channels
    cfg.MODEL.PIXEL_STD = [1.0] * channels
    cfg.MODEL.DAMA_VIT.merge_from_list(
        ["EMBED_DIM", 64, "DEPTH", 3, "NUM_HEADS", 2, "GLOBAL_BLOCK_INDEXES", [2],
         "WINDOW_SIZE", 4, "OUT_CHANNELS", 32, "IMG_SIZE", 128]
    )
    return cfg


def test_backbone_is_registered():
    assert "build_dama_vit_fpn_backbone" in BACKBONE_REGISTRY


@pytest.mark.parametrize("channels", [1, 3, 7])
def test_backbone_outputs_p2_to_p6(channels):
    cfg = tiny_cfg(channels)
    backbone = build_backbone(cfg, ShapeSpec(channels=channels))
    assert isinstance(backbone, SimpleFeaturePyramid) and isinstance(backbone.net, ViT)
    assert backbone.net.patch_embed.proj.in_channels == channels
    shapes = backbone.output_shape()
    assert list(shapes) == ["p2", "p3", "p4", "p5", "p6"]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32, 64]
    assert all(s.channels == 32 for s in shapes.values())
    x = torch.randn(2, channels, 128, 192)
    out = backbone(x)
    for name, stride in zip(shapes, [4, 8, 16, 32, 64]):
        assert out[name].shape == (2, 32, 128 // stride, 192 // stride), name
        assert torch.isfinite(out[name]).all()


def test_window_and_global_blocks_follow_config():
    cfg = tiny_cfg(7)
    vit = build_backbone(cfg, ShapeSpec(channels=7)).net
    assert [b.window_size for b in vit.blocks] == [4, 4, 0]
    assert all(b.attn.use_rel_pos for b in vit.blocks)
    # global block: relative position table sized for IMG_SIZE / patch = 8 tokens
    assert vit.blocks[2].attn.rel_pos_h.shape[0] == 2 * 8 - 1
    # stored pos_embed: cls + PRETRAIN_IMG_SIZE/patch grid (128/16 = 8x8)
    assert vit.pos_embed.shape == (1, 1 + 64, 64)


def test_init_seed_redraws_the_vit_and_nothing_else():
    """MODEL.DAMA_VIT.INIT_SEED (the A/A control 'redraw'): the ViT's weights are a draw
    under that seed, whatever SEED's stream; the pyramid's weights and the random stream
    after the build are those of the run without it."""
    def build(global_seed: int, init_seed: int):
        cfg = tiny_cfg(3)
        cfg.MODEL.DAMA_VIT.INIT_SEED = init_seed
        torch.manual_seed(global_seed)
        backbone = build_backbone(cfg, ShapeSpec(channels=3))
        return backbone, torch.get_rng_state()

    plain, stream = build(0, -1)
    redrawn, stream_redrawn = build(0, 5)
    other_run, _ = build(1, 5)
    vit_keys = [k for k in plain.state_dict() if k.startswith("net.")]
    rest = [k for k in plain.state_dict() if not k.startswith("net.")]
    assert vit_keys and rest
    a, b, c = plain.state_dict(), redrawn.state_dict(), other_run.state_dict()
    assert torch.equal(stream, stream_redrawn)  # heads, data order and drop path unchanged
    assert all(torch.equal(a[k], b[k]) for k in rest)
    assert all(torch.equal(b[k], c[k]) for k in vit_keys)  # the draw depends on INIT_SEED only
    assert not torch.equal(a["net.blocks.0.attn.qkv.weight"], b["net.blocks.0.attn.qkv.weight"])
    assert not torch.equal(a["net.patch_embed.proj.weight"], b["net.patch_embed.proj.weight"])
    # a second draw of the same initialisation: same scale, not another distribution
    for k in ("net.blocks.0.attn.qkv.weight", "net.blocks.1.mlp.fc1.weight"):
        assert abs(float(a[k].std()) / float(b[k].std()) - 1) < 0.05, k


def test_bad_global_index_is_a_user_error():
    cfg = tiny_cfg(7)
    cfg.MODEL.DAMA_VIT.GLOBAL_BLOCK_INDEXES = [5]
    with pytest.raises(DamaUserError, match="GLOBAL_BLOCK_INDEXES"):
        build_backbone(cfg, ShapeSpec(channels=7))
