"""Train/test splits of the probe tasks, deterministic for a seed.

- crops: stratified k-fold (:func:`dama_det.classification.folds.stratified_kfold`,
  the classification split), each fold the test split once;
- dense patches: split by image (group), so that no image has patches on both sides;
- ``--max-images``: a seeded subset (class-balanced when labels are given).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DamaUserError


def stratified_folds(
    labels: Sequence[int] | np.ndarray, folds: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold ``(train, test)`` index pairs covering every sample once as test.

    Args:
        labels: ``(N,)`` class indices.
        folds: ``k >= 2`` (2 = a 50/50 split evaluated both ways).
        seed: shuffle seed inside each class.

    Returns:
        ``k`` pairs of sorted int64 index arrays.

    Raises:
        DamaUserError: ``k < 2`` or a class with fewer than ``k`` samples.
    """
    from ..classification.folds import stratified_kfold

    tests = stratified_kfold(labels, folds, seed)
    n = len(np.asarray(labels))
    pairs = []
    for test in tests:
        train = np.setdiff1d(np.arange(n), test)
        pairs.append((train.astype(np.int64), test.astype(np.int64)))
    return pairs


def group_split(
    groups: Sequence[int] | np.ndarray, test_fraction: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split samples by group (image): every group's samples go to one side.

    ``round(test_fraction * G)`` of the ``G`` groups (at least 1, at most ``G - 1``),
    drawn by a seeded permutation, are the test groups.

    Args:
        groups: ``(N,)`` group id of each sample.
        test_fraction: fraction of the groups to test on, in (0, 1).
        seed: permutation seed.

    Returns:
        ``(train, test)`` sorted int64 sample indices.

    Raises:
        DamaUserError: fewer than two groups, or a fraction outside (0, 1).
    """
    groups = np.asarray(groups)
    if not 0.0 < test_fraction < 1.0:
        raise DamaUserError(f"test fraction must be in (0, 1), got {test_fraction}")
    unique = np.unique(groups)
    if len(unique) < 2:
        raise DamaUserError(f"a split by image needs at least 2 images, got {len(unique)}")
    n_test = int(np.clip(round(test_fraction * len(unique)), 1, len(unique) - 1))
    perm = np.random.default_rng(seed).permutation(unique)
    is_test = np.isin(groups, perm[:n_test])
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


def subsample(
    n: int, max_n: int | None, seed: int = 0, labels: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """A seeded subset of ``range(n)`` of at most ``max_n`` items, sorted.

    With ``labels`` the classes take turns (each shuffled by the seed), so the subset
    is as class-balanced as the data allows.

    Returns:
        Sorted int64 indices (all of them when ``max_n`` is None or >= ``n``).
    """
    if max_n is None or max_n >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.permutation(n)[:max_n]).astype(np.int64)
    labels = np.asarray(labels)
    queues = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < max_n:
        for q in queues:
            if q and len(picked) < max_n:
                picked.append(int(q.pop(0)))
    return np.sort(np.asarray(picked, dtype=np.int64))
