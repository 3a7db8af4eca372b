"""Stratified k-fold splits: partition, stratification, determinism, reuse and mismatches;
the few-label subsets of a training fold."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dama_det.classification.folds import load_or_create_folds, stratified_kfold, stratified_subset
from dama_det.errors import DamaUserError


@pytest.mark.parametrize("counts, k", [
    ([10, 10, 10, 10, 10], 10),
    ([7, 23, 11, 3, 40], 3),
    ([5, 6], 5),
    ([100, 37, 12, 64, 19], 10),
])
def test_folds_are_stratified_disjoint_and_cover_everything(counts, k):
    rng = np.random.default_rng(1)
    labels = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    folds = stratified_kfold(labels, k, seed=3)
    assert len(folds) == k
    flat = np.concatenate(folds)
    assert len(flat) == len(labels) and np.array_equal(np.sort(flat), np.arange(len(labels)))
    per_class = np.array([np.bincount(labels[f], minlength=len(counts)) for f in folds])
    assert (per_class.max(axis=0) - per_class.min(axis=0) <= 1).all()
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_split_is_deterministic_per_seed():
    labels = np.repeat(np.arange(5), 20)
    a = stratified_kfold(labels, 10, seed=0)
    b = stratified_kfold(labels, 10, seed=0)
    c = stratified_kfold(labels, 10, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_too_small_class_and_bad_k():
    with pytest.raises(DamaUserError, match="class 1 has only 2 sample"):
        stratified_kfold([0, 0, 0, 1, 1], 3)
    with pytest.raises(DamaUserError, match="at least 2"):
        stratified_kfold([0, 1], 1)


def test_label_subset_keeps_a_rounded_share_of_every_class_nested_and_seeded():
    """--label-fraction: per class round(f * n), at least one; only training indices;
    the same seed gives the same crops (every method) and nested subsets across f."""
    counts = [40, 25, 5, 12]
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(4), counts))
    folds = stratified_kfold(labels, 5, seed=0)
    train = np.concatenate(folds[1:])  # fold 0 is the test fold
    per_class = np.bincount(labels[train], minlength=4)
    assert per_class.tolist() == [32, 20, 4, 9]
    subsets = {f: stratified_subset(train, labels, f, seed=7) for f in (0.1, 0.25, 0.5, 1.0)}
    assert np.bincount(labels[subsets[0.25]], minlength=4).tolist() == [8, 5, 1, 2]
    assert np.bincount(labels[subsets[0.1]], minlength=4).tolist() == [3, 2, 1, 1]
    assert np.array_equal(subsets[1.0], np.sort(train))
    for f, sub in subsets.items():
        assert np.array_equal(sub, np.unique(sub)) and set(sub) <= set(train.tolist())
        assert not set(sub) & set(folds[0].tolist())
        assert np.array_equal(sub, stratified_subset(train[::-1], labels, f, seed=7))
    assert set(subsets[0.1]) <= set(subsets[0.25]) <= set(subsets[0.5])
    other = stratified_subset(train, labels, 0.25, seed=8)
    assert len(other) == len(subsets[0.25]) and not np.array_equal(other, subsets[0.25])
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(DamaUserError, match=r"--label-fraction must be in \(0, 1\]"):
            stratified_subset(train, labels, bad, seed=0)


def _dataset(n=30):
    ids = [f"c{i % 3}/img{i:03d}.tif" for i in range(n)]
    labels = [i % 3 for i in range(n)]
    return ids, labels, ["a", "b", "c"]


def test_small_class_is_named(tmp_path):
    with pytest.raises(DamaUserError, match="class 'glia' has only 2 image"):
        load_or_create_folds(tmp_path / "f.json", ["a", "b", "c", "d", "e"], [0, 0, 0, 1, 1],
                             ["neuron", "glia"], k=3)
    assert not (tmp_path / "f.json").exists()


def test_file_is_written_then_reused(tmp_path):
    ids, labels, names = _dataset()
    path = tmp_path / "folds.json"
    folds, reused = load_or_create_folds(path, ids, labels, names, k=5, seed=0)
    assert not reused and path.is_file()
    saved = json.loads(path.read_text())
    assert saved["k"] == 5 and len(saved["samples"]) == 30
    # a different seed does not re-split an existing file: the saved split is the reference
    again, reused = load_or_create_folds(path, ids, labels, names, k=5, seed=9)
    assert reused and all(np.array_equal(x, y) for x, y in zip(folds, again))


@pytest.mark.parametrize("change, message", [
    ("k", "holds 5 folds but --folds 4"),
    ("samples", "another dataset"),
    ("labels", "is labelled"),
    ("garbage", "cannot read folds file"),
    ("partition", "not a partition"),
])
def test_mismatching_file_is_refused(tmp_path, change, message):
    ids, labels, names = _dataset()
    path = tmp_path / "folds.json"
    load_or_create_folds(path, ids, labels, names, k=5)
    k = 5
    if change == "k":
        k = 4
    elif change == "samples":
        ids = ids[:-1] + ["c2/new.tif"]
    elif change == "labels":
        names = ["a", "c", "b"]
    elif change == "garbage":
        path.write_text("{not json")
    elif change == "partition":
        obj = json.loads(path.read_text())
        obj["folds"][0] = obj["folds"][0][:-1]
        path.write_text(json.dumps(obj))
    with pytest.raises(DamaUserError, match=message):
        load_or_create_folds(path, ids, labels, names, k=k)
