"""ViT classifier: export loading (keys, pos-embed resampling, mismatches), layer decay."""
from __future__ import annotations

import pytest
import torch
from timm.layers import resample_abs_pos_embed
from timm.optim import param_groups_layer_decay

from dama_det.classification.model import (
    CentrePooledViT,
    ViTArch,
    build_classifier,
    load_export_into,
    start_from_sincos_positions,
)
from dama_det.encoder_export.format import load_encoder_export
from dama_det.errors import DamaUserError
from tests.helpers.classification import write_export

ARCH = ViTArch(patch_size=16, embed_dim=64, depth=2, num_heads=2)


def test_classifier_is_avg_pool_with_fc_norm_for_any_channel_count():
    for chans in (1, 3, 7):
        model = build_classifier(ARCH, img_size=64, in_chans=chans, num_classes=5)
        assert model.global_pool == "avg" and isinstance(model.fc_norm, torch.nn.LayerNorm)
        assert isinstance(model.norm, torch.nn.Identity)
        assert model(torch.rand(2, chans, 64, 64)).shape == (2, 5)
    with pytest.raises(DamaUserError, match="not a multiple of the patch size"):
        build_classifier(ARCH, img_size=72, in_chans=7, num_classes=5)


def test_export_loads_with_only_head_and_fc_norm_missing(tmp_path):
    path = write_export(tmp_path / "enc.pth")
    model = build_classifier(ARCH, img_size=128, in_chans=7, num_classes=5)
    report = load_export_into(model, path)
    assert sorted(report.missing_keys) == ["fc_norm.bias", "fc_norm.weight", "head.bias",
                                           "head.weight"]
    assert sorted(report.unexpected_keys) == ["norm.bias", "norm.weight"]
    assert report.pos_embed_resampled is None and report.pretrain_epoch == 500
    export = load_encoder_export(path)["model"]
    state = model.state_dict()
    for key in ("blocks.1.attn.qkv.weight", "patch_embed.proj.weight", "cls_token", "pos_embed"):
        assert torch.equal(state[key], export[key]), key
    assert model.head.weight.abs().max() < 1e-3  # MAE recipe: near-zero head


def test_pos_embed_is_resampled_for_another_image_size(tmp_path):
    path = write_export(tmp_path / "enc.pth", img_size=128)
    model = build_classifier(ARCH, img_size=64, in_chans=7, num_classes=5)
    report = load_export_into(model, path)
    assert report.pos_embed_resampled == ([8, 8], [4, 4])
    expected = resample_abs_pos_embed(load_encoder_export(path)["model"]["pos_embed"],
                                      new_size=[4, 4], num_prefix_tokens=1)
    assert model.pos_embed.shape == (1, 17, 64)
    assert torch.allclose(model.pos_embed, expected)


@pytest.mark.parametrize("kind, message", [
    ("channels", "pretrained on 3 channel"),
    ("width", "architecture mismatch"),
    ("missing_key", "lacks encoder weight"),
])
def test_bad_exports_raise(tmp_path, kind, message):
    kwargs = {"channels": {"in_chans": 3}, "width": {"embed_dim": 32},
              "missing_key": {"drop": ("blocks.1.mlp.fc2.weight",)}}[kind]
    path = write_export(tmp_path / "enc.pth", **kwargs)
    model = build_classifier(ARCH, img_size=64, in_chans=7, num_classes=5)
    with pytest.raises(DamaUserError, match=message):
        load_export_into(model, path)


def test_layer_decay_groups_scale_lr_by_depth():
    model = build_classifier(ARCH, img_size=64, in_chans=7, num_classes=5)
    groups = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.65,
                                      no_weight_decay_list=model.no_weight_decay())
    scales = {round(g["lr_scale"], 6) for g in groups}
    # layers: embeddings (0), blocks 1..2, head (3) -> 0.65^3, 0.65^2, 0.65, 1
    assert scales == {round(0.65 ** i, 6) for i in range(4)}
    named = dict(model.named_parameters())
    for g in groups:
        if any(p is named["head.weight"] for p in g["params"]):
            assert g["lr_scale"] == 1.0 and g["weight_decay"] == 0.05
        if any(p is named["pos_embed"] for p in g["params"]):
            assert g["lr_scale"] == pytest.approx(0.65 ** 3) and g["weight_decay"] == 0.0


def test_export_written_by_pretraining_loads_without_missing_encoder_keys(tmp_path):
    """The real pretraining model's export (not a hand-made one) fits the classifier."""
    from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
    from dama_det.pretrain.export import export_pretrainer
    from dama_det.pretrain.models_mae import MAEConfig

    cfg = MAEConfig(img_size=64, patch_size=16, in_chans=7, embed_dim=64, depth=2, num_heads=2,
                    decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    pretrainer = DAMAPretrainer(cfg, MethodConfig())
    path = export_pretrainer(pretrainer, tmp_path / "dama.pth", epoch=3)
    model = build_classifier(ARCH, img_size=64, in_chans=7, num_classes=5)
    report = load_export_into(model, path)
    assert sorted(report.missing_keys) == ["fc_norm.bias", "fc_norm.weight", "head.bias",
                                           "head.weight"]
    assert report.pretrain_epoch == 3 and report.pretrain_method == "dama"
    encoder = pretrainer.encoder_state_dict()
    state = model.state_dict()
    assert torch.equal(state["blocks.0.mlp.fc1.weight"], encoder["blocks.0.mlp.fc1.weight"])
    assert torch.equal(state["pos_embed"], encoder["pos_embed"])


def test_centre_pool_reads_only_the_central_patch_tokens_and_keeps_the_weights():
    """pool="centre": the head's feature is the mean of the 2 x 2 patch tokens over the
    centre of the 4 x 4 grid (no class token, no other patch); "mean" averages all 16
    patch tokens. Both have the same parameters, so exports and saved states fit either."""
    torch.manual_seed(0)
    centre = build_classifier(ARCH, img_size=64, in_chans=7, num_classes=5, pool="centre")
    mean = build_classifier(ARCH, img_size=64, in_chans=7, num_classes=5)
    assert isinstance(centre, CentrePooledViT) and not isinstance(mean, CentrePooledViT)
    tokens = torch.randn(3, 17, 64)  # class token + 4 x 4 patches
    grid = tokens[:, 1:].reshape(3, 4, 4, 64)
    assert torch.allclose(centre.pool(tokens), grid[:, 1:3, 1:3].mean(dim=(1, 2)))
    assert torch.allclose(mean.pool(tokens), tokens[:, 1:].mean(dim=1))
    moved = tokens.clone()
    moved[:, 0] += 5.0  # the class token
    moved[:, 1] += 5.0  # a corner patch
    moved[:, 16] -= 5.0  # the other corner
    assert torch.equal(centre.pool(moved), centre.pool(tokens))
    assert not torch.allclose(mean.pool(moved), mean.pool(tokens))
    assert centre.state_dict().keys() == mean.state_dict().keys()
    centre.load_state_dict(mean.state_dict())
    x = torch.rand(2, 7, 64, 64)
    feats = mean.forward_features(x)
    assert torch.equal(centre.forward_features(x), feats)
    assert torch.allclose(centre(x), mean.head(mean.fc_norm(centre.pool(feats))))
    with pytest.raises(DamaUserError, match="pool 'max' is not one of mean, centre"):
        build_classifier(ARCH, img_size=64, in_chans=7, num_classes=5, pool="max")


def test_random_classifier_starts_from_the_position_table_an_export_brings():
    """--random-pos-embed sincos: random weights, the pretraining model's fixed sin-cos
    positions (learnable from there); without it, timm's trunc-normal(0.02) draw."""
    from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
    from dama_det.pretrain.models_mae import MAEConfig

    torch.manual_seed(0)
    model = build_classifier(ARCH, img_size=64, in_chans=7, num_classes=5)
    drawn = model.pos_embed.detach().clone()
    assert drawn.shape == (1, 17, 64) and 0.015 < drawn.std() < 0.025  # timm's draw
    blocks = model.blocks[0].attn.qkv.weight.detach().clone()
    start_from_sincos_positions(model)
    cfg = MAEConfig(img_size=64, patch_size=16, in_chans=7, embed_dim=64, depth=2, num_heads=2,
                    decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    exported = DAMAPretrainer(cfg, MethodConfig()).encoder_state_dict()["pos_embed"]
    assert torch.equal(model.pos_embed.detach(), exported)
    assert torch.equal(model.pos_embed[0, 0], torch.zeros(64))  # the class token's row
    assert 0.4 < model.pos_embed[0, 1:].std() < 0.8
    assert model.pos_embed.requires_grad
    assert torch.equal(model.blocks[0].attn.qkv.weight, blocks)  # weights untouched


def test_unknown_random_position_table_is_refused_by_name(tmp_path):
    from dama_det.classification.options import ClassifyOptions

    assert ClassifyOptions(out=tmp_path, methods=[]).random_pos_embed == "sincos"
    with pytest.raises(DamaUserError, match="'learned' is not one of sincos, trunc_normal"):
        ClassifyOptions(out=tmp_path, methods=[], random_pos_embed="learned")
    assert ClassifyOptions(out=tmp_path, methods=[]).pool == "centre"  # cell-centred crops
    with pytest.raises(DamaUserError, match="pool 'cls' is not one of mean, centre"):
        ClassifyOptions(out=tmp_path, methods=[], pool="cls")
