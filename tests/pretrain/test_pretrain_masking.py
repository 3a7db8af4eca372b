"""Masking invariants: random mask, per-sample adaptive mask (not the published
broadcasting bug), visible-index gathering."""
from __future__ import annotations

import pytest
import torch

from dama_det.pretrain.masking import adaptive_mask, ids_keep_from_mask, mask_lengths, random_mask

# (L, mask_ratio, overlap_ratio): the paper's 128/16 grid, and other grids/ratios.
CASES = [(64, 0.8, 0.5), (16, 0.75, 0.5), (64, 0.5, 1.0), (196, 0.75, 0.25), (64, 0.8, 0.0),
         (49, 0.6, 0.5)]
BATCHES = [1, 2, 3, 7, 16, 64]


def test_mask_lengths_paper_values():
    assert mask_lengths(64, 0.8, 0.5) == (12, 40, 6)
    assert mask_lengths(196, 0.75, 0.5) == (49, 98, 24)


def _check_adaptive_mask(batch: int, num_patches: int, ratio: float, overlap: float,
                         seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    len_keep, loss_len, overlap_len = mask_lengths(num_patches, ratio, overlap)
    mask1 = random_mask(batch, num_patches, ratio, generator=gen)
    loss = torch.rand(batch, num_patches, generator=gen) * 5
    mask2 = adaptive_mask(mask1, loss, ratio, overlap, generator=gen)

    assert mask2.shape == (batch, num_patches)
    assert set(mask2.unique().tolist()) <= {0.0, 1.0}
    vis1, vis2 = mask1 == 0, mask2 == 0
    # exactly len_keep visible per sample
    assert (vis2.sum(1) == len_keep).all(), vis2.sum(1)
    # exactly overlap_len of student 1's visible patches are visible to student 2
    assert ((vis1 & vis2).sum(1) == overlap_len).all()
    masked1 = ~vis1
    for i in range(batch):
        shown = loss[i][masked1[i] & vis2[i]]  # masked for student 1, visible to student 2
        hidden = loss[i][masked1[i] & ~vis2[i]]
        assert shown.numel() == len_keep - overlap_len
        assert hidden.numel() == loss_len + overlap_len
        # visible ones are the lowest-loss masked patches ...
        if shown.numel() and hidden.numel():
            assert shown.max() < hidden.min()
        # ... and the (loss_len + overlap_len) highest-loss masked patches stay masked
        hardest = torch.where(masked1[i], loss[i], torch.tensor(float("-inf"))).topk(
            loss_len + overlap_len).indices
        assert (mask2[i, hardest] == 1).all()


@pytest.mark.parametrize("num_patches,ratio,overlap", CASES)
@pytest.mark.parametrize("batch", BATCHES)
def test_adaptive_mask_invariants(num_patches, ratio, overlap, batch):
    _check_adaptive_mask(batch, num_patches, ratio, overlap, seed=1000 * batch + num_patches)


def test_adaptive_mask_every_batch_size_1_to_64():
    for batch in range(1, 65):
        _check_adaptive_mask(batch, 64, 0.8, 0.5, seed=batch)


def test_adaptive_mask_ignores_loss_of_visible_patches():
    """Huge losses on student 1's visible patches must not steal 'hard' slots."""
    gen = torch.Generator().manual_seed(3)
    mask1 = random_mask(8, 64, 0.8, generator=gen)
    loss = torch.rand(8, 64, generator=gen)
    loss_vis = loss.clone()
    loss_vis[mask1 == 0] = 1e6
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(adaptive_mask(mask1, loss, 0.8, 0.5, g1),
                       adaptive_mask(mask1, loss_vis, 0.8, 0.5, g2))


def test_adaptive_mask_with_tied_losses_keeps_counts():
    mask1 = random_mask(16, 64, 0.8, generator=torch.Generator().manual_seed(0))
    mask2 = adaptive_mask(mask1, torch.zeros(16, 64), 0.8, 0.5)
    assert ((mask2 == 0).sum(1) == 12).all()
    assert (((mask1 == 0) & (mask2 == 0)).sum(1) == 6).all()


def _published_adaptive_mask(m1, loss, mask_ratio, overlap_ratio):
    """Algorithm 1 as published (broadcasting bug in the last assignment)."""
    num_patches = m1.shape[1]
    len_keep = int(num_patches * (1 - mask_ratio))
    loss_len = int(num_patches - len_keep * 2)
    overlap_len = int(len_keep * overlap_ratio)
    loss = loss * m1
    take = loss.argsort(dim=1)[:, -(loss_len + overlap_len):]
    m2 = torch.where(m1 == 1, 0.0, 1.0)
    m2[torch.arange(m2.shape[0])[:, None], take] = 1
    m1_ids = m1.argsort(dim=1)[:, :overlap_len]
    m2[:, m1_ids] = 0
    return m2


def test_published_version_leaks_visible_patches_but_ours_does_not():
    gen = torch.Generator().manual_seed(0)
    mask1 = random_mask(16, 64, 0.8, generator=gen)
    loss = torch.rand(16, 64, generator=gen)
    buggy = _published_adaptive_mask(mask1, loss, 0.8, 0.5)
    ours = adaptive_mask(mask1, loss, 0.8, 0.5)
    assert ((buggy == 0).sum(1) > 12).any()
    assert ((ours == 0).sum(1) == 12).all()
    # with batch 1 the published version has no broadcasting problem: same counts
    one = _published_adaptive_mask(mask1[:1], loss[:1], 0.8, 0.5)
    assert int((one == 0).sum()) == 12


def test_adaptive_mask_rejects_bad_input():
    mask1 = random_mask(2, 64, 0.8)
    with pytest.raises(ValueError, match="mask_ratio >= 0.5"):
        adaptive_mask(random_mask(2, 64, 0.4), torch.rand(2, 64), 0.4, 0.5)
    with pytest.raises(ValueError, match="exactly 12 visible"):
        adaptive_mask(torch.zeros(2, 64), torch.rand(2, 64), 0.8, 0.5)
    with pytest.raises(ValueError, match=r"\(N, L\)"):
        adaptive_mask(mask1, torch.rand(2, 63), 0.8, 0.5)


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_random_mask_counts_and_reproducibility(batch):
    m = random_mask(batch, 64, 0.8, generator=torch.Generator().manual_seed(7))
    assert m.shape == (batch, 64) and m.dtype == torch.float32
    assert ((m == 0).sum(1) == 12).all()
    again = random_mask(batch, 64, 0.8, generator=torch.Generator().manual_seed(7))
    assert torch.equal(m, again)
    if batch > 1:
        assert not torch.equal(m[0], m[1])


def test_random_mask_covers_all_patches_uniformly():
    m = random_mask(4000, 16, 0.75, generator=torch.Generator().manual_seed(0))
    freq = (m == 0).float().mean(0)  # each patch visible with probability 4/16
    assert torch.allclose(freq, torch.full((16,), 0.25), atol=0.03)


def test_ids_keep_from_mask_gathers_visible_patches_in_order():
    mask = torch.tensor([[1, 0, 1, 0, 1, 1], [0, 1, 1, 1, 1, 0]], dtype=torch.float32)
    ids = ids_keep_from_mask(mask)
    assert ids.tolist() == [[1, 3], [0, 5]]
    with pytest.raises(ValueError, match="same number"):
        ids_keep_from_mask(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
