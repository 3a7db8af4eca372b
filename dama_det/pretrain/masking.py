"""Patch masks for masked-image pretraining: random (MAE) and adaptive (DAMA).

A mask is a ``(N, L)`` tensor over the ``L`` patches of each image with
``0 = visible`` (fed to the encoder) and ``1 = masked`` (to be reconstructed). Every
mask built here keeps exactly ``len_keep = int(L * (1 - mask_ratio))`` patches visible
in *every* sample, so the encoder can gather the visible tokens of a batch as a dense
``(N, len_keep, D)`` tensor (:func:`ids_keep_from_mask`).

The adaptive mask is computed per sample. The published pseudo-code (Algorithm 1 of
the DAMA supplement) writes ``m2[:, m1_ids] = 0``, which broadcasts over the batch:
every row receives the union of all samples' overlap indices, so with batch > 1 far
more than ``len_keep`` patches stay visible. Here each row only receives its own
indices.
"""
from __future__ import annotations

import torch


def mask_lengths(num_patches: int, mask_ratio: float,
                 overlap_ratio: float = 0.0) -> tuple[int, int, int]:
    """Patch counts of the DAMA masking scheme.

    Args:
        num_patches: ``L``, patches per image.
        mask_ratio: fraction of masked patches in ``[0, 1)``.
        overlap_ratio: fraction of student 1's visible patches also visible to student 2.

    Returns:
        ``(len_keep, loss_len, overlap_len)`` with ``len_keep = int(L (1 - r))``,
        ``loss_len = L - 2 len_keep`` and ``overlap_len = int(len_keep o)``
        (for L = 64, r = 0.8, o = 0.5: 12, 40, 6).
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    if not 0.0 <= overlap_ratio <= 1.0:
        raise ValueError(f"overlap_ratio must be in [0, 1], got {overlap_ratio}")
    len_keep = int(num_patches * (1 - mask_ratio))
    if len_keep < 1:
        raise ValueError(f"mask_ratio {mask_ratio} leaves no visible patch out of {num_patches}")
    loss_len = num_patches - 2 * len_keep
    overlap_len = int(len_keep * overlap_ratio)
    return len_keep, loss_len, overlap_len


def random_mask(
    batch_size: int,
    num_patches: int,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniformly random mask with exactly ``len_keep`` visible patches per sample.

    Args:
        batch_size: ``N``.
        num_patches: ``L``.
        mask_ratio: fraction of masked patches.
        generator: random generator (its device is used when ``device`` is None).
        device: where to build the mask.

    Returns:
        Float mask ``(N, L)``, 0 = visible, 1 = masked.
    """
    len_keep, _, _ = mask_lengths(num_patches, mask_ratio)
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.rand(batch_size, num_patches, generator=generator, device=device)
    keep = noise.argsort(dim=1)[:, :len_keep]
    mask = torch.ones(batch_size, num_patches, device=device)
    mask.scatter_(1, keep, 0.0)
    return mask


def adaptive_mask(
    mask1: torch.Tensor,
    loss: torch.Tensor,
    mask_ratio: float,
    overlap_ratio: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Student 2's mask from student 1's mask and per-patch reconstruction loss.

    Per sample: patches masked in ``mask1`` become visible, except the
    ``loss_len + overlap_len`` of them with the highest loss, which stay masked; then
    ``overlap_len`` of student 1's visible patches (chosen at random) are made
    visible as well. Student 2 thus sees ``overlap_len`` patches student 1 saw plus
    the masked patches student 1 reconstructed best, and must reconstruct the
    hardest ones; it keeps exactly ``len_keep`` visible patches.

    Args:
        mask1: ``(N, L)`` student 1's mask (0 visible, 1 masked) with exactly
            ``len_keep`` visible patches per row.
        loss: ``(N, L)`` student 1's per-patch loss (values at visible patches ignored).
        mask_ratio: the masking ratio ``r`` (>= 0.5 so that ``loss_len >= 0``).
        overlap_ratio: ``o``, share of student 1's visible patches shown to student 2.
        generator: optional generator for choosing the overlapping patches.

    Returns:
        ``(N, L)`` mask2 with the dtype/device of ``mask1``, 0 visible, 1 masked.

    Raises:
        ValueError: shapes differ, ``mask_ratio < 0.5``, or ``mask1`` does not keep
            exactly ``len_keep`` patches in every row.
    """
    if mask1.ndim != 2 or mask1.shape != loss.shape:
        raise ValueError(
            f"mask1 {tuple(mask1.shape)} and loss {tuple(loss.shape)} must both be (N, L)")
    n, num_patches = mask1.shape
    len_keep, loss_len, overlap_len = mask_lengths(num_patches, mask_ratio, overlap_ratio)
    if loss_len < 0:
        raise ValueError(f"adaptive masking needs mask_ratio >= 0.5, got {mask_ratio}")
    masked1 = mask1 > 0.5
    visible_counts = (~masked1).sum(dim=1)
    if n and not bool((visible_counts == len_keep).all()):
        raise ValueError(
            f"mask1 must keep exactly {len_keep} visible patches per sample "
            f"(mask_ratio {mask_ratio}), got counts {visible_counts.unique().tolist()}"
        )
    # Hardest masked patches (highest loss) stay masked for student 2.
    score = loss.detach().float().masked_fill(~masked1, float("-inf"))
    hard = score.topk(loss_len + overlap_len, dim=1).indices
    mask2 = (~masked1).to(mask1.dtype)  # student 1's visible patches start masked
    mask2.scatter_(1, hard, 1)
    if overlap_len:
        noise = torch.rand(n, num_patches, generator=generator, device=mask1.device)
        noise = noise.masked_fill(masked1, float("inf"))
        shared = noise.topk(overlap_len, dim=1, largest=False).indices
        mask2.scatter_(1, shared, 0)  # per sample: row i gets only its own indices
    return mask2


def ids_keep_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Indices of the visible patches of every sample, in ascending patch order.

    Args:
        mask: ``(N, L)`` with the same number of visible (0) patches in every row.

    Returns:
        Long tensor ``(N, len_keep)``.

    Raises:
        ValueError: rows have different numbers of visible patches.
    """
    visible = mask < 0.5
    counts = visible.sum(dim=1)
    if counts.numel() and not bool((counts == counts[0]).all()):
        raise ValueError(
            f"every sample must keep the same number of patches, got {counts.tolist()}")
    len_keep = int(counts[0]) if counts.numel() else 0
    # stable sort of (masked=1, visible=0) puts visible patches first, in index order
    return mask.gt(0.5).to(torch.uint8).argsort(dim=1, stable=True)[:, :len_keep]
