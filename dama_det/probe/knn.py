"""Cosine k-nearest-neighbour probe on pooled features.

Features are centred by the training mean and L2-normalised (so the similarity is
the cosine between centred features; without centring, the common offset every
LayerNorm'd feature shares dominates the cosine). Each test sample takes its ``k``
most similar training samples (default 20) and votes:

- ``"temperature"`` (default, as DINO's k-NN evaluation): neighbour ``j`` adds
  ``exp(s_j / T)`` (cosine ``s_j``, ``T = 0.07``) to its class's score;
- ``"majority"``: each neighbour adds 1; ties go to the class whose tied neighbours
  are more similar in total.

The class with the highest score is predicted (ties left: the lowest class index).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .metrics import classification_metrics

WEIGHTINGS = ("temperature", "majority")


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    weighting: str = "temperature",
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Predict classes by cosine k-NN.

    Args:
        train_features: ``(M, D)``.
        train_labels: ``(M,)`` class indices in ``[0, num_classes)``.
        test_features: ``(N, D)``.
        num_classes: ``C``.
        k: neighbours (capped at ``M``).
        temperature: ``T`` of the ``"temperature"`` weighting.
        weighting: ``"temperature"`` or ``"majority"`` (see the module docstring).
        chunk_size: test samples per similarity matrix (memory ``chunk_size * M``).

    Returns:
        ``(N,)`` int64 predicted classes.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if len(train_features) == 0:
        raise ValueError("k-NN needs at least one training sample")
    train = train_features.float()
    mean = train.mean(dim=0, keepdim=True)
    train = F.normalize(train - mean, dim=1)
    test = F.normalize(test_features.float() - mean, dim=1)
    labels = torch.as_tensor(train_labels, dtype=torch.int64)
    k = min(int(k), len(train))
    preds = []
    for start in range(0, len(test), chunk_size):
        sims = test[start:start + chunk_size] @ train.T  # (n, M)
        top_sims, top_idx = sims.topk(k, dim=1)  # (n, k)
        top_labels = labels[top_idx]
        if weighting == "temperature":
            weights = (top_sims / temperature).exp()
        else:
            # counts dominate: 1e-6 * (total similarity <= k) < 1 only breaks ties
            weights = 1.0 + 1e-6 * top_sims.double()
        scores = torch.zeros(len(top_labels), num_classes, dtype=weights.dtype)
        scores.scatter_add_(1, top_labels, weights)
        preds.append(scores.argmax(dim=1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.int64)


def knn_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    k: int = 20,
    temperature: float = 0.07,
    weighting: str = "temperature",
) -> dict[str, Any]:
    """Fit (memorise) the training split and score the test split.

    Args:
        train_features, test_features: ``(M, D)`` and ``(N, D)`` pooled features.
        train_labels, test_labels: ``(M,)`` and ``(N,)`` class indices.
        num_classes: ``C``.
        class_names: ``C`` names for the per-class recall.
        k, temperature, weighting: see :func:`knn_predict`.

    Returns:
        :func:`~dama_det.probe.metrics.classification_metrics` of the test split plus
        the settings ``k``, ``temperature``, ``weighting``.
    """
    preds = knn_predict(train_features, train_labels, test_features, num_classes=num_classes,
                        k=k, temperature=temperature, weighting=weighting)
    out = classification_metrics(test_labels, preds, num_classes, class_names)
    out.update(k=min(int(k), len(train_features)), temperature=temperature, weighting=weighting)
    return out
