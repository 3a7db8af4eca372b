"""Losses of MAE / DAMA pretraining: masked patch reconstruction and feature regression.

Reconstruction (MAE): mean squared error between predicted and true patches
(``p * p * C`` values each), averaged over the values of a patch and then over the
*masked* patches only; with ``norm_pix`` each true patch is normalised by its own mean
and variance first.

Feature regression (DAMA's "dual loss", data2vec style): student 1's projected tokens
regress a target built from student 2's last K blocks (each block's feed-forward
output, layer-normed without affine parameters, averaged over the K blocks, softmax
over the feature dimension), with Smooth-L1 (``beta``) summed over the feature
dimension and averaged over tokens.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches.

    Args:
        imgs: ``(N, C, H, W)`` with H and W divisible by ``patch_size``.
        patch_size: ``p``.

    Returns:
        ``(N, L, p * p * C)`` with ``L = (H / p) (W / p)`` in row-major patch order and
        each patch flattened as ``(p, p, C)``.
    """
    n, c, h, w = imgs.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by patch size {p}")
    gh, gw = h // p, w // p
    x = imgs.reshape(n, c, gh, p, gw, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, gh * gw, p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int,
               grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Args:
        patches: ``(N, L, p * p * C)``.
        patch_size: ``p``.
        channels: ``C``.
        grid: ``(H / p, W / p)``.

    Returns:
        ``(N, C, H, W)``.
    """
    n = patches.shape[0]
    gh, gw = grid
    p = patch_size
    x = patches.reshape(n, gh, gw, p, p, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(n, channels, gh * p, gw * p)


def normalize_patches(target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch standardisation used by ``norm_pix_loss``: ``(x - mean) / sqrt(var + eps)``
    over the last dimension (unbiased=False variance)."""
    var, mean = torch.var_mean(target, dim=-1, keepdim=True, correction=0)
    return (target - mean) * torch.rsqrt(var + eps)


def reconstruction_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    norm_pix: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked-patch MSE.

    Args:
        pred: ``(N, L, P)`` predicted patches.
        target: ``(N, L, P)`` true patches (see :func:`patchify`).
        mask: ``(N, L)``, 1 = masked (counted), 0 = visible (ignored).
        norm_pix: normalise each true patch by its mean and variance.

    Returns:
        ``(loss, per_patch)``: the scalar mean over masked patches, and the per-patch
        MSE ``(N, L)`` for every patch (used by adaptive masking).
    """
    target = target.float()
    if norm_pix:
        target = normalize_patches(target)
    per_patch = (pred.float() - target).pow(2).mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    loss = (per_patch * mask).sum() / mask.sum().clamp_min(1.0)
    return loss, per_patch


def regression_target(ffn_outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """DAMA's regression target from the teacher's last K blocks.

    Args:
        ffn_outputs: K tensors ``(N, T, D)``, each block's feed-forward output.

    Returns:
        ``(N, T, D)``: softmax over D of the mean of the affine-free layer norms.
    """
    if not ffn_outputs:
        raise ValueError("regression_target needs at least one block output")
    dim = ffn_outputs[0].shape[-1]
    avg = sum(F.layer_norm(y.float(), (dim,)) for y in ffn_outputs) / len(ffn_outputs)
    return avg.softmax(dim=-1)


def feature_regression_loss(pred: torch.Tensor, target: torch.Tensor,
                            beta: float = 2.0) -> torch.Tensor:
    """Smooth-L1 regression summed over features and averaged over tokens.

    Args:
        pred: ``(N, T, D)`` student 1's projected tokens.
        target: ``(N, T, D)`` the (detached) target.
        beta: Smooth-L1 transition point (quadratic ``0.5 d^2 / beta`` below it,
            linear ``|d| - 0.5 beta`` above; ``beta = 0`` is plain L1).

    Returns:
        Scalar loss.
    """
    per_value = F.smooth_l1_loss(pred.float(), target.float(), reduction="none", beta=beta)
    return per_value.sum(dim=-1).mean()
