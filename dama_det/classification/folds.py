"""Stratified k-fold splits, saved to JSON and reused by every method of a comparison.

Every method in the paper's tables is evaluated on the same 10 folds. The split is
made once (deterministic for a seed), written to a JSON file and read back on later
runs; a file that does not describe the current dataset is refused with a clear
error instead of silently re-splitting.

Stratification: inside each class the samples are shuffled, then all classes are laid
end to end and position ``j`` goes to fold ``j % k``. Each class is therefore spread
over the folds with counts that differ by at most one, and so are the fold sizes.

Few labels (``--label-fraction``): :func:`stratified_subset` keeps a seeded share of
each class of a training fold; the test fold stays whole.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.label_subset import seeded_share
from ..errors import DamaUserError
from ..utils.io import atomic_write_json

FOLDS_FORMAT = "dama_det.folds.v1"


def stratified_kfold(labels: Sequence[int] | np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """Split sample indices into ``k`` stratified, disjoint folds covering every sample.

    Args:
        labels: class index per sample, shape ``(N,)``.
        k: number of folds (>= 2).
        seed: seed of the shuffle inside each class.

    Returns:
        ``k`` sorted int64 index arrays (the test indices of each fold).

    Raises:
        DamaUserError: ``k < 2`` or a class with fewer than ``k`` samples.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if k < 2:
        raise DamaUserError(f"--folds must be at least 2, got {k}")
    classes, counts = np.unique(labels, return_counts=True)
    small = [(int(c), int(n)) for c, n in zip(classes, counts) if n < k]
    if small:
        c, n = small[0]
        raise DamaUserError(
            f"class {c} has only {n} sample(s), fewer than the {k} folds requested; "
            "use fewer --folds or add images"
        )
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in classes])
    fold_of_position = np.arange(len(order)) % k
    return [np.sort(order[fold_of_position == f]) for f in range(k)]


def stratified_subset(indices: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray,
                      fraction: float, seed: int) -> np.ndarray:
    """A seeded ``fraction`` of each class of ``indices`` (a training fold with few labels).

    Each class keeps ``round(fraction * n)`` of its ``n`` samples, at least one. The
    samples of a class are taken in the order of one seeded permutation, so for one seed
    the subsets are nested (the 25 % subset holds the 10 % one) and every method given
    the same seed trains on the same crops.

    Args:
        indices: sample indices to choose from, shape ``(M,)``.
        labels: class index per sample of the whole dataset, shape ``(N,)``.
        fraction: share kept, in (0, 1]; 1 keeps everything.
        seed: seed of the per-class permutations.

    Returns:
        The sorted int64 indices kept, a subset of ``indices``.

    Raises:
        DamaUserError: ``fraction`` outside (0, 1].
    """
    if not 0 < fraction <= 1:
        raise DamaUserError(f"--label-fraction must be in (0, 1], got {fraction}")
    indices = np.sort(np.asarray(indices, dtype=np.int64))
    of_index = np.asarray(labels, dtype=np.int64)[indices]
    rng = np.random.default_rng(seed)
    kept = []
    for c in np.unique(of_index):
        members = indices[of_index == c]
        kept.append(members[seeded_share(len(members), fraction, rng)])
    return np.sort(np.concatenate(kept))


def load_or_create_folds(
    path: str | os.PathLike,
    sample_ids: Sequence[str],
    labels: Sequence[int],
    class_names: Sequence[str],
    k: int,
    seed: int = 0,
) -> tuple[list[np.ndarray], bool]:
    """Read the folds from ``path`` if it exists and matches, else create and save them.

    Args:
        path: the folds JSON file.
        sample_ids: a stable identifier per sample (path relative to the data folder).
        labels: class index per sample.
        class_names: class name per class index.
        k: number of folds wanted.
        seed: seed used when the split is created.

    Returns:
        ``(folds, reused)``: the test indices of each fold (into ``sample_ids``) and
        whether an existing file was reused.

    Raises:
        DamaUserError: the existing file is unreadable or describes another dataset
            or another number of folds.
    """
    path = Path(path)
    sample_ids = [str(s) for s in sample_ids]
    labels = [int(x) for x in labels]
    if path.exists():
        folds = _read_matching(path, sample_ids, labels, list(class_names), k)
        return folds, True
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
    small = [(class_names[c], int(n)) for c, n in enumerate(counts) if 0 < n < k]
    if small:
        name, n = small[0]
        raise DamaUserError(
            f"class {name!r} has only {n} image(s), fewer than the {k} folds requested; "
            "use fewer --folds or add images"
        )
    folds = stratified_kfold(labels, k, seed)
    label_names = [class_names[i] for i in labels]
    atomic_write_json(path, {
        "format": FOLDS_FORMAT,
        "k": k,
        "seed": seed,
        "class_names": list(class_names),
        "samples": [{"id": s, "label": n} for s, n in zip(sample_ids, label_names)],
        "folds": [f.tolist() for f in folds],
    })
    return folds, False


def _read_matching(
    path: Path, sample_ids: list[str], labels: list[int], class_names: list[str], k: int
) -> list[np.ndarray]:
    """Load a folds file and check it describes this dataset and ``k``."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DamaUserError(f"{path}: cannot read folds file ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FOLDS_FORMAT:
        raise DamaUserError(f"{path}: not a dama_det folds file (format {FOLDS_FORMAT!r})")
    try:
        stored_ids = [str(s["id"]) for s in obj["samples"]]
        stored_labels = [str(s["label"]) for s in obj["samples"]]
        folds = [np.asarray(f, dtype=np.int64) for f in obj["folds"]]
        stored_k = int(obj["k"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DamaUserError(f"{path}: malformed folds file ({type(exc).__name__}: {exc})") from None
    hint = "delete it or pass another --folds-file to make a new split"
    if stored_k != k:
        raise DamaUserError(f"{path}: holds {stored_k} folds but --folds {k} was asked; {hint}")
    if stored_ids != sample_ids:
        missing = sorted(set(sample_ids) - set(stored_ids))
        extra = sorted(set(stored_ids) - set(sample_ids))
        detail = (f"{len(stored_ids)} samples in the file, {len(sample_ids)} in the data"
                  + (f"; not in the file: {missing[0]}" if missing else "")
                  + (f"; not in the data: {extra[0]}" if extra else ""))
        raise DamaUserError(f"{path}: folds were made for another dataset ({detail}); {hint}")
    current = [class_names[i] for i in labels]
    if stored_labels != current:
        i = next(j for j, (a, b) in enumerate(zip(stored_labels, current)) if a != b)
        raise DamaUserError(
            f"{path}: sample {sample_ids[i]} is labelled {stored_labels[i]!r} in the file "
            f"but {current[i]!r} in the data; {hint}"
        )
    flat = np.concatenate(folds) if folds else np.zeros(0, np.int64)
    if len(folds) != k or len(flat) != len(sample_ids) or not np.array_equal(
        np.sort(flat), np.arange(len(sample_ids))
    ):
        raise DamaUserError(f"{path}: folds are not a partition of the samples; {hint}")
    return [np.sort(f) for f in folds]
