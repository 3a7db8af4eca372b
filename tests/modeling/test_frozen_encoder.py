"""MODEL.DAMA_VIT.FROZEN_BLOCKS: the detector's ViT frozen whole or in part."""
from __future__ import annotations

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone
from torch import nn

from dama_det import DamaUserError, get_dama_cfg
from dama_det.engine.optim import build_dama_optimizer
from dama_det.modeling.frozen_encoder import frozen_block_count


def frozen_cfg(frozen_blocks: int):
    cfg = get_dama_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_dama_vit_fpn_backbone"
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [0.0], [1.0]
    cfg.MODEL.DAMA_VIT.merge_from_list(
        ["EMBED_DIM", 64, "DEPTH", 3, "NUM_HEADS", 2, "GLOBAL_BLOCK_INDEXES", [2],
         "WINDOW_SIZE", 4, "OUT_CHANNELS", 32, "IMG_SIZE", 64, "PRETRAIN_IMG_SIZE", 64,
         "DROP_PATH_RATE", 0.5, "FROZEN_BLOCKS", frozen_blocks]
    )
    cfg.SOLVER.BASE_LR = 1e-2
    return cfg


def build(frozen_blocks: int) -> nn.Module:
    """A model whose parameter names start with ``backbone.``, as the detector's do."""
    torch.manual_seed(0)
    model = nn.Module()
    model.backbone = build_backbone(frozen_cfg(frozen_blocks), ShapeSpec(channels=1))
    return model


def one_step(model: nn.Module, cfg) -> dict[str, torch.Tensor]:
    """The state before one optimizer step on a loss of every pyramid level."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_dama_optimizer(cfg, model)
    model.train()
    out = model.backbone(torch.randn(2, 1, 64, 64))
    sum(v.square().mean() for v in out.values()).backward()
    optimizer.step()
    return before


def test_whole_vit_frozen_learns_only_the_pyramid():
    model = build(-1)
    vit = model.backbone.net
    assert not any(p.requires_grad for p in vit.parameters())
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(not n.startswith("backbone.net.") for n in trainable)
    optimized = {id(p) for g in build_dama_optimizer(frozen_cfg(-1), model).param_groups
                 for p in g["params"]}
    assert optimized == {id(p) for p in model.parameters() if p.requires_grad}

    before = one_step(model, frozen_cfg(-1))
    after = model.state_dict()
    vit_keys = [k for k in after if k.startswith("backbone.net.")]
    pyramid_keys = [k for k in after if k.startswith("backbone.simfp_")]
    assert vit_keys and pyramid_keys
    assert all(torch.equal(before[k], after[k]) for k in vit_keys)
    assert any(not torch.equal(before[k], after[k]) for k in pyramid_keys)


def test_frozen_features_are_the_same_at_every_training_step():
    """Stochastic depth is off in frozen blocks: in train mode, with DROP_PATH_RATE 0.5,
    the frozen ViT computes the same features twice; the unfrozen one does not."""
    x = torch.randn(2, 1, 64, 64)
    frozen, trained = build(-1).backbone.net.train(), build(0).backbone.net.train()
    assert torch.equal(frozen(x)["last_feat"], frozen(x)["last_feat"])
    assert not torch.equal(trained(x)["last_feat"], trained(x)["last_feat"])


def test_first_blocks_frozen_the_rest_learns():
    model = build(2)
    vit = model.backbone.net
    assert not vit.pos_embed.requires_grad
    assert not any(p.requires_grad for p in vit.patch_embed.parameters())
    assert not any(p.requires_grad for b in vit.blocks[:2] for p in b.parameters())
    assert all(p.requires_grad for p in vit.blocks[2].parameters())
    assert isinstance(vit.blocks[1].drop_path, nn.Identity)
    assert not isinstance(vit.blocks[2].drop_path, nn.Identity)  # still stochastic depth

    before = one_step(model, frozen_cfg(2))
    after = model.state_dict()
    assert torch.equal(before["backbone.net.blocks.1.mlp.fc1.weight"],
                       after["backbone.net.blocks.1.mlp.fc1.weight"])
    assert torch.equal(before["backbone.net.pos_embed"], after["backbone.net.pos_embed"])
    assert not torch.equal(before["backbone.net.blocks.2.mlp.fc1.weight"],
                           after["backbone.net.blocks.2.mlp.fc1.weight"])


def test_default_freezes_nothing():
    assert get_dama_cfg().MODEL.DAMA_VIT.FROZEN_BLOCKS == 0
    assert all(p.requires_grad for p in build(0).parameters())


@pytest.mark.parametrize("value", [-2, 4])
def test_out_of_range_is_a_user_error_naming_the_key(value):
    with pytest.raises(DamaUserError, match=rf"MODEL.DAMA_VIT.FROZEN_BLOCKS={value}.*DEPTH=3"):
        build(value)
    assert [frozen_block_count(v, 3) for v in (-1, 0, 1, 3)] == [3, 0, 1, 3]
