"""The N-channel MAE ViT and the DAMA two-student model: shapes, timm compatibility,
methods, teacher update, optimizer groups, export."""
from __future__ import annotations

import pytest
import timm
import torch
from timm.layers import build_sincos2d_pos_embed

from dama_det.encoder_export.format import load_encoder_export
from dama_det.errors import DamaUserError
from dama_det.pretrain.dama import DAMAPretrainer, MethodConfig
from dama_det.pretrain.driver import build_optimizer
from dama_det.pretrain.export import export_pretrainer
from dama_det.pretrain.masking import random_mask
from dama_det.pretrain.models_mae import MaskedAutoencoderViT, mae_config


def _vit(cfg) -> torch.nn.Module:
    return timm.models.vision_transformer.VisionTransformer(
        img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans,
        embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads, num_classes=0)


def test_sizes_and_fused_attention():
    tiny = mae_config("tiny")
    assert (tiny.embed_dim, tiny.depth, tiny.num_heads) == (192, 12, 3)
    assert (tiny.decoder_embed_dim, tiny.decoder_depth, tiny.decoder_num_heads) == (512, 8, 16)
    assert (mae_config("small").embed_dim, mae_config("base").num_heads) == (384, 12)
    model = MaskedAutoencoderViT(mae_config("test"))
    blocks = list(model.blocks) + list(model.decoder_blocks)
    assert blocks and all(b.attn.fused_attn for b in blocks)  # scaled_dot_product_attention


@pytest.mark.parametrize("in_chans,img_size,patch",
                         [(7, 64, 16), (1, 32, 8), (3, 96, 16), (12, 48, 8)])
def test_shapes_for_any_channel_count_and_size(in_chans, img_size, patch):
    cfg = mae_config("test", in_chans=in_chans, img_size=img_size, patch_size=patch)
    model = MaskedAutoencoderViT(cfg)
    num_patches = (img_size // patch) ** 2
    assert model.num_patches == num_patches
    imgs = torch.rand(2, in_chans, img_size, img_size)
    mask = random_mask(2, num_patches, 0.75)
    ids = (mask == 0).nonzero()[:, 1].reshape(2, -1)
    loss, pred, per_patch = model(imgs, mask, ids)
    assert pred.shape == (2, num_patches, patch * patch * in_chans)
    assert per_patch.shape == (2, num_patches) and loss.ndim == 0 and torch.isfinite(loss)


def test_bad_architecture_is_a_user_error():
    with pytest.raises(DamaUserError, match="not divisible by patch size"):
        mae_config("test", img_size=100, patch_size=16)
    with pytest.raises(DamaUserError, match="unknown model size"):
        mae_config("huge")


def test_fixed_sincos_position_embedding():
    model = MaskedAutoencoderViT(mae_config("test", img_size=64))
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad
    assert model.pos_embed.shape == (1, 17, 64)
    assert torch.equal(model.pos_embed[0, 0], torch.zeros(64))
    assert torch.allclose(model.pos_embed[0, 1:], build_sincos2d_pos_embed([4, 4], dim=64))


def _block_updates(model: MaskedAutoencoderViT, imgs: torch.Tensor) -> list[float]:
    """|block(x) - x| / |x| for each encoder block, on the unmasked tokens of ``imgs``."""
    x = model.patch_embed(imgs) + model.pos_embed[:, 1:]
    updates = []
    with torch.no_grad():
        for block in model.blocks:
            y = block(x)
            updates.append(((y - x).norm() / x.norm()).item())
            x = y
    return updates


def test_small_residual_init_starts_the_encoder_blocks_near_the_identity():
    """``xavier_small_residual`` is MAE's xavier init but for the encoder blocks' two
    stream-writing Linear layers (std 0.02): every other tensor is the same draw, and each
    block changes the token stream by under a third instead of over a half."""
    assert mae_config("mini").weight_init == "xavier_small_residual"  # the default (F16)
    models = {}
    for init in ("xavier", "xavier_small_residual"):
        torch.manual_seed(0)
        models[init] = MaskedAutoencoderViT(
            mae_config("mini", img_size=64, in_chans=2, weight_init=init)).eval()
    xavier, small = (models[k].state_dict() for k in ("xavier", "xavier_small_residual"))
    changed = {k for k in xavier if not torch.equal(xavier[k], small[k])}
    assert changed == {f"blocks.{i}.{name}.weight" for i in range(4)
                       for name in ("attn.proj", "mlp.fc2")}
    for key in changed:
        assert abs(small[key].std().item() - 0.02) < 0.002, key
        assert xavier[key].std().item() > 0.05, key
    imgs = torch.rand(2, 2, 64, 64, generator=torch.Generator().manual_seed(1))
    assert max(_block_updates(models["xavier_small_residual"], imgs)) < 0.3
    assert min(_block_updates(models["xavier"], imgs)) > 0.45


def test_encoder_equals_timm_vision_transformer():
    """Our encoder's weights load into timm's ViT with no missing/unexpected keys and
    with every patch visible both compute the same features."""
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(mae_config("test", img_size=64))
    vit = _vit(model.cfg)
    result = vit.load_state_dict(model.encoder_state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    imgs = torch.rand(2, 7, 64, 64)
    ids = torch.arange(16).expand(2, -1)
    ours, _ = model.forward_encoder(imgs, ids)
    assert torch.allclose(ours, vit.forward_features(imgs), atol=1e-5)


@pytest.mark.parametrize("method", ["dama", "dama-ema", "dama-rand", "mae"])
def test_methods_forward_backward_and_terms(method):
    torch.manual_seed(0)
    model = DAMAPretrainer(mae_config("test", img_size=64), MethodConfig(method=method))
    loss, terms, out = model(torch.rand(3, 7, 64, 64), return_outputs=True)
    loss.backward()
    expected = {"recon1"} if method == "mae" else {"recon1", "recon2", "regression"}
    assert set(terms) == expected
    assert (out["mask1"] == 0).sum(1).tolist() == [3, 3, 3]  # L = 16, r = 0.8
    if method == "mae":
        assert model.student2 is None and "mask2" not in out
        assert loss.item() == pytest.approx(terms["recon1"].item())
        return
    assert (out["mask2"] == 0).sum(1).tolist() == [3, 3, 3]
    s1_grads = [p.grad for p in model.student1.parameters() if p.requires_grad]
    assert all(g is not None for g in s1_grads)
    s2_grads = [p.grad for p in model.student2.parameters()]
    if method == "dama-ema":
        assert all(g is None for g in s2_grads)  # teacher: no gradient
        assert loss.item() == pytest.approx(terms["recon1"].item() + terms["regression"].item(),
                                            rel=1e-5)
    else:  # both students are trained by gradient
        assert any(g is not None and g.abs().sum() > 0 for g in s2_grads)
        total = terms["recon1"] + terms["recon2"] + terms["regression"]
        assert loss.item() == pytest.approx(total.item(), rel=1e-5)


def test_regression_target_is_detached_and_weights_apply():
    torch.manual_seed(0)
    cfg = MethodConfig(method="dama", weight_recon2=0.0, weight_regression=2.0, weight_recon1=0.5)
    model = DAMAPretrainer(mae_config("test", img_size=64), cfg)
    loss, terms, _ = model(torch.rand(2, 7, 64, 64))
    assert loss.item() == pytest.approx(
        0.5 * terms["recon1"].item() + 2.0 * terms["regression"].item(), rel=1e-5)
    loss.backward()
    # student 2 only learns from its own reconstruction (weight 0 here), not from the regression
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.student2.parameters())
    # stable warm epochs: regression weighted 0
    model.method_cfg = MethodConfig(method="dama", stable_epochs=2)
    loss, terms, _ = model(torch.rand(2, 7, 64, 64), epoch=1.5)
    assert loss.item() == pytest.approx((terms["recon1"] + terms["recon2"]).item(), rel=1e-5)


def test_ema_teacher_update():
    model = DAMAPretrainer(mae_config("test", img_size=64),
                           MethodConfig(method="dama-ema", ema_momentum=0.9))
    s1, s2 = model.student1.blocks[0].mlp.fc1.weight, model.student2.blocks[0].mlp.fc1.weight
    assert torch.equal(s1, s2)  # teacher starts as a copy
    with torch.no_grad():
        s1.add_(1.0)
    before = s2.clone()
    model.update_teacher()
    assert torch.allclose(s2, 0.9 * before + 0.1 * s1)


def test_dama_rand_uses_an_independent_random_mask():
    torch.manual_seed(1)
    model = DAMAPretrainer(mae_config("test", img_size=128), MethodConfig(method="dama-rand"))
    _, _, out = model(torch.rand(16, 7, 128, 128), return_outputs=True)
    overlap = ((out["mask1"] == 0) & (out["mask2"] == 0)).sum(1)
    assert ((out["mask2"] == 0).sum(1) == 12).all()
    assert len(set(overlap.tolist())) > 1  # adaptive masks would always overlap by exactly 6


def test_weight_decay_groups():
    model = DAMAPretrainer(mae_config("test", img_size=64), MethodConfig(method="dama"))
    opt = build_optimizer(model, 0.05)
    assert opt.defaults["betas"] == (0.9, 0.95)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    no_decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0
                for p in g["params"]}
    assert "student1.blocks.0.attn.qkv.weight" in decay
    assert {"student1.cls_token", "student1.mask_token", "student1.blocks.0.norm1.weight",
            "student1.blocks.0.attn.qkv.bias"} <= no_decay
    assert not any("pos_embed" in n for n in decay | no_decay)  # fixed, not optimised


def test_export_pretrainer_loads_into_timm(tmp_path):
    model = DAMAPretrainer(mae_config("test", img_size=64), MethodConfig(method="dama"))
    path = export_pretrainer(model, tmp_path / "enc.pth", channel_names=list("abcdefg"), epoch=3)
    meta = load_encoder_export(path)
    assert (meta["img_size"], meta["patch_size"], meta["in_chans"], meta["embed_dim"],
            meta["depth"], meta["num_heads"], meta["method"], meta["epoch"]) == (
        64, 16, 7, 64, 2, 2, "dama", 3)
    assert not any(k.startswith(("decoder", "mask_token", "student")) for k in meta["model"])
    vit = _vit(model.model_cfg)
    result = vit.load_state_dict(meta["model"], strict=True)
    assert not result.missing_keys
    assert torch.equal(vit.blocks[1].mlp.fc2.weight, model.student1.blocks[1].mlp.fc2.weight)


def test_bf16_autocast_step_on_cpu():
    torch.manual_seed(0)
    model = DAMAPretrainer(mae_config("test", img_size=64), MethodConfig(method="dama"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, terms, out = model(torch.rand(2, 7, 64, 64), return_outputs=True)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert model.student1.blocks[0].attn.qkv.weight.grad.dtype == torch.float32
    assert ((out["mask2"] == 0).sum(1) == 3).all()


@pytest.mark.parametrize("method", ["mae", "dama"])
def test_reconstruction_figure(tmp_path, method):
    from dama_det.pretrain.visualize import reconstruction_images, save_reconstruction_figure

    model = DAMAPretrainer(mae_config("test", img_size=64), MethodConfig(method=method))
    imgs = torch.rand(2, 7, 64, 64)
    with torch.no_grad():
        _, _, out = model(imgs, return_outputs=True)
    path = save_reconstruction_figure(tmp_path / "fig.png", imgs, out, 16, True, list("ABCDEFG"),
                                      title=method)
    assert path.read_bytes()[:4] == b"\x89PNG"
    # visible patches of a reconstruction are the input itself
    recon = reconstruction_images(imgs, out["mask1"], out["pred1"], 16, True)
    visible = (out["mask1"][0] == 0).nonzero()[0, 0].item()
    r, c = divmod(visible, 4)
    assert torch.allclose(recon[0, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16],
                          imgs[0, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16])
