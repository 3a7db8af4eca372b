"""Classification metrics of a probe: accuracy, balanced accuracy, per-class recall."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


def classification_metrics(
    y_true: torch.Tensor | np.ndarray,
    y_pred: torch.Tensor | np.ndarray,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class recall and the confusion matrix.

    Balanced accuracy is the mean recall over the classes present in ``y_true``
    (chance level is ``1 / number of present classes`` for any class balance).

    Args:
        y_true: true class indices ``(N,)``.
        y_pred: predicted class indices ``(N,)``.
        num_classes: number of classes ``C``.
        class_names: ``C`` names for ``per_class_recall`` (default ``"0"``, ``"1"``...).

    Returns:
        ``accuracy``, ``balanced_accuracy`` (floats in [0, 1]; NaN for ``N = 0``),
        ``per_class_recall`` (name -> recall, None for a class absent from
        ``y_true``), ``confusion`` (``C x C`` list, rows = true class) and ``n``.
    """
    t = np.asarray(torch.as_tensor(y_true).cpu(), dtype=np.int64).ravel()
    p = np.asarray(torch.as_tensor(y_pred).cpu(), dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    confusion = np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes)
    support = confusion.sum(axis=1)
    recall = [float(confusion[c, c] / support[c]) if support[c] else None
              for c in range(num_classes)]
    present = [r for r in recall if r is not None]
    return {
        "accuracy": float((t == p).mean()) if t.size else float("nan"),
        "balanced_accuracy": float(np.mean(present)) if present else float("nan"),
        "per_class_recall": dict(zip(names, recall)),
        "confusion": confusion.tolist(),
        "n": int(t.size),
    }


def mean_metrics(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Average the metrics of several folds.

    Returns:
        ``accuracy``, ``balanced_accuracy`` and ``per_class_recall`` averaged over the
        folds (a class's recall over the folds where it was present), ``confusion``
        summed, ``n`` summed, and ``folds``: the per-fold accuracies and balanced
        accuracies.
    """
    if len(results) == 1:
        return dict(results[0])
    names = list(results[0]["per_class_recall"])
    per_class = {}
    for name in names:
        vals = [r["per_class_recall"][name] for r in results
                if r["per_class_recall"][name] is not None]
        per_class[name] = float(np.mean(vals)) if vals else None
    return {
        "accuracy": float(np.mean([r["accuracy"] for r in results])),
        "balanced_accuracy": float(np.mean([r["balanced_accuracy"] for r in results])),
        "per_class_recall": per_class,
        "confusion": np.sum([r["confusion"] for r in results], axis=0).tolist(),
        "n": int(sum(r["n"] for r in results)),
        "folds": [{"accuracy": r["accuracy"], "balanced_accuracy": r["balanced_accuracy"]}
                  for r in results],
    }
