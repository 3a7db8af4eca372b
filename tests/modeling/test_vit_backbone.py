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


def test_bad_global_index_is_a_user_error():
    cfg = tiny_cfg(7)
    cfg.MODEL.DAMA_VIT.GLOBAL_BLOCK_INDEXES = [5]
    with pytest.raises(DamaUserError, match="GLOBAL_BLOCK_INDEXES"):
        build_backbone(cfg, ShapeSpec(channels=7))
