"""The pixel-detail stem: its shapes, its zero start, and its place in the backbone."""
from __future__ import annotations

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from dama_det import DamaUserError
from dama_det.engine.optim import build_dama_optimizer
from dama_det.modeling import PixelDetailStem

from .test_vit_backbone import tiny_cfg


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_stem_output_has_the_level_shape_and_starts_at_zero(stride):
    torch.manual_seed(0)
    stem = PixelDetailStem(3, channels=8, out_channels=16, stride=stride)
    # k stride-2 convolutions, one stride-1, each with its norm and activation
    assert [c.stride[0] for c in stem.convs] == [2] * (stride.bit_length() - 1) + [1]
    x = torch.randn(2, 3, 64, 96)
    out = stem(x, (64 // stride, 96 // stride))
    assert out.shape == (2, 16, 64 // stride, 96 // stride)
    assert torch.count_nonzero(out) == 0
    torch.nn.init.normal_(stem.proj.weight)
    assert torch.count_nonzero(stem(x, (64 // stride, 96 // stride))) > 0


def test_stem_crops_a_remainder_like_the_patch_grid():
    stem = PixelDetailStem(1, channels=4, out_channels=4, stride=4)
    torch.nn.init.normal_(stem.proj.weight)
    x = torch.randn(1, 1, 70, 66)  # ceil(70/4) = 18 rows, the level has 17
    full = stem.proj(stem.convs(x))
    assert full.shape[-2:] == (18, 17)
    assert torch.equal(stem(x, (17, 16)), full[..., :17, :16])


@pytest.mark.parametrize("stride", [0, 1, 3, 6])
def test_stem_rejects_a_stride_that_is_not_a_power_of_two(stride):
    with pytest.raises(ValueError, match="power of two"):
        PixelDetailStem(1, channels=4, out_channels=4, stride=stride)


def stem_cfg(channels: int, width: int):
    cfg = tiny_cfg(channels)
    cfg.MODEL.DAMA_VIT.DETAIL_STEM_CHANNELS = width
    return cfg


def test_backbone_with_stem_starts_as_the_backbone_without_it():
    torch.manual_seed(0)
    plain = build_backbone(stem_cfg(3, 0), ShapeSpec(channels=3))
    torch.manual_seed(0)
    with_stem = build_backbone(stem_cfg(3, 16), ShapeSpec(channels=3))
    assert plain.detail_stem is None
    assert isinstance(with_stem.detail_stem, PixelDetailStem)
    assert with_stem.detail_stem.stride == 4 and with_stem.detail_stem.proj.out_channels == 32
    assert with_stem.output_shape() == plain.output_shape()
    x = torch.randn(2, 3, 128, 96)
    a, b = plain(x), with_stem(x)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # once its projection is non-zero the stem changes p2, and only p2
    torch.nn.init.normal_(with_stem.detail_stem.proj.weight, std=0.1)
    b = with_stem(x)
    assert not torch.allclose(a["p2"], b["p2"])
    assert all(torch.equal(a[k], b[k]) for k in ["p3", "p4", "p5", "p6"])


def test_stem_follows_the_finest_level_of_an_8px_pyramid():
    cfg = stem_cfg(1, 8)
    cfg.MODEL.DAMA_VIT.merge_from_list(["PATCH_SIZE", 8, "SCALE_FACTORS", [2.0, 1.0, 0.5]])
    backbone = build_backbone(cfg, ShapeSpec(channels=1))
    assert backbone.finest_level == "p2" and backbone.detail_stem.stride == 4
    torch.nn.init.normal_(backbone.detail_stem.proj.weight)
    out = backbone(torch.randn(1, 1, 64, 96))
    assert out["p2"].shape == (1, 32, 16, 24)


def test_stem_is_trained_at_the_full_learning_rate_and_learns():
    cfg = stem_cfg(1, 8)
    cfg.MODEL.DAMA_VIT.LAYER_DECAY = 0.5

    class Detector(torch.nn.Module):  # parameter names as in the detector: backbone.*
        def __init__(self):
            super().__init__()
            self.backbone = build_backbone(cfg, ShapeSpec(channels=1))

    model = Detector()
    opt = build_dama_optimizer(cfg, model)
    stem_params = {id(p) for p in model.backbone.detail_stem.parameters()}
    factors = {g["lr"] / cfg.SOLVER.BASE_LR for g in opt.param_groups
               if any(id(p) in stem_params for p in g["params"])}
    assert factors == {1.0}
    # the zero projection gets a gradient at the first step, so the stem can leave zero
    out = model.backbone(torch.randn(1, 1, 64, 64))
    out["p2"].square().sum().backward()
    assert model.backbone.detail_stem.proj.weight.grad.abs().sum() > 0


def test_stem_on_a_pyramid_with_an_odd_finest_stride_is_a_user_error():
    cfg = stem_cfg(1, 8)
    cfg.MODEL.DAMA_VIT.merge_from_list(["PATCH_SIZE", 12, "PRETRAIN_IMG_SIZE", 120])
    with pytest.raises(DamaUserError, match="DETAIL_STEM_CHANNELS.*give 3"):
        build_backbone(cfg, ShapeSpec(channels=1))
