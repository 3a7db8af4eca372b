"""Loss values on hand-built cases: reconstruction, norm_pix, regression target,
Smooth-L1 regression."""
from __future__ import annotations

import pytest
import torch

from dama_det.pretrain.losses import (
    feature_regression_loss,
    normalize_patches,
    patchify,
    reconstruction_loss,
    regression_target,
    unpatchify,
)


def test_patchify_layout_and_round_trip():
    imgs = torch.randn(2, 3, 8, 12)
    patches = patchify(imgs, 4)
    assert patches.shape == (2, 6, 4 * 4 * 3)
    # patch 1 is row 0, column 1, flattened as (p, p, C)
    assert torch.equal(patches[0, 1], imgs[0, :, 0:4, 4:8].permute(1, 2, 0).reshape(-1))
    # patch 4 is row 1, column 1
    assert torch.equal(patches[1, 4], imgs[1, :, 4:8, 4:8].permute(1, 2, 0).reshape(-1))
    assert torch.equal(unpatchify(patches, 4, 3, (2, 3)), imgs)
    with pytest.raises(ValueError, match="not divisible"):
        patchify(torch.zeros(1, 1, 10, 8), 4)


@pytest.mark.parametrize("norm_pix", [False, True])
def test_reconstruction_loss_zero_for_perfect_prediction(norm_pix):
    target = torch.rand(3, 16, 48)
    pred = normalize_patches(target) if norm_pix else target.clone()
    mask = (torch.rand(3, 16) > 0.5).float()
    loss, per_patch = reconstruction_loss(pred, target, mask, norm_pix=norm_pix)
    assert loss.item() == pytest.approx(0.0, abs=1e-10)
    assert per_patch.shape == (3, 16) and per_patch.abs().max() < 1e-10


def test_reconstruction_loss_known_value_and_masked_only_averaging():
    target = torch.zeros(2, 4, 3)
    pred = torch.full((2, 4, 3), 2.0)  # error 2 on every value -> MSE 4 per patch
    mask = torch.tensor([[1, 0, 0, 1], [0, 0, 0, 1]], dtype=torch.float32)
    pred[mask == 0] = 100.0  # visible patches: large errors that must be ignored
    loss, per_patch = reconstruction_loss(pred, target, mask, norm_pix=False)
    assert loss.item() == pytest.approx(4.0)
    assert per_patch[0, 1].item() == pytest.approx(10000.0)  # reported for all patches
    # different per-patch errors: mean over the 3 masked patches of (1, 4, 9)
    pred = torch.zeros(2, 4, 3)
    pred[0, 0], pred[0, 3], pred[1, 3] = 1.0, 2.0, 3.0
    loss, _ = reconstruction_loss(pred, target, mask, norm_pix=False)
    assert loss.item() == pytest.approx((1 + 4 + 9) / 3)


def test_norm_pix_normalises_each_target_patch():
    target = torch.tensor([[[1.0, 3.0, 1.0, 3.0], [10.0, 10.0, 10.0, 10.0]]])  # (1, 2, 4)
    mask = torch.ones(1, 2)
    # patch 0 -> (-1, 1, -1, 1) (mean 2, var 1); patch 1 constant -> 0
    loss, per_patch = reconstruction_loss(torch.zeros(1, 2, 4), target, mask, norm_pix=True)
    assert per_patch[0, 0].item() == pytest.approx(1.0 / (1.0 + 1e-6), rel=1e-5)
    assert per_patch[0, 1].item() == pytest.approx(0.0, abs=1e-8)
    assert loss.item() == pytest.approx(0.5, rel=1e-5)
    # without norm_pix the raw values count
    _, raw = reconstruction_loss(torch.zeros(1, 2, 4), target, mask, norm_pix=False)
    assert raw[0, 1].item() == pytest.approx(100.0)


def test_smooth_l1_beta_behaviour_summed_over_features():
    pred = torch.zeros(1, 2, 3)
    target = torch.tensor([[[1.0, 0.0, 0.0], [3.0, 0.0, -4.0]]])
    # beta 2: |d| = 1 < 2 -> 0.5 * 1 / 2 = 0.25 ; |d| = 3 -> 3 - 1 = 2 ; |d| = 4 -> 3
    # token sums: 0.25 and 5, averaged over the 2 tokens
    assert feature_regression_loss(pred, target, beta=2.0).item() == pytest.approx((0.25 + 5.0) / 2)
    # beta 1: 0.5 ; 2.5 + 3.5 = 6 -> mean 3.25
    assert feature_regression_loss(pred, target, beta=1.0).item() == pytest.approx((0.5 + 6.0) / 2)
    # small differences are quadratic: halving d quarters the loss
    small = torch.full((1, 1, 4), 0.2)
    assert feature_regression_loss(small / 2, torch.zeros_like(small)).item() == pytest.approx(
        feature_regression_loss(small, torch.zeros_like(small)).item() / 4
    )
    assert feature_regression_loss(target, target).item() == 0.0


def test_regression_target_is_softmax_of_mean_layer_norm():
    torch.manual_seed(0)
    ys = [torch.randn(2, 5, 8) for _ in range(3)]
    target = regression_target(ys)
    assert target.shape == (2, 5, 8)
    assert torch.allclose(target.sum(-1), torch.ones(2, 5))
    # layer norm without affine: invariant to per-token scale and shift of each block output
    scaled = [y * 3.0 + 7.0 for y in ys]
    assert torch.allclose(regression_target(scaled), target, atol=1e-5)
    manual = sum((y - y.mean(-1, keepdim=True))
                 / (y.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
                 for y in ys) / 3
    assert torch.allclose(target, manual.softmax(-1), atol=1e-6)
