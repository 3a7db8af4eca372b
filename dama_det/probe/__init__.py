"""Frozen-encoder probes: does a pretrained encoder know something, in minutes on CPU.

- :mod:`.features`: an encoder export (or its untrained counterpart) as a frozen timm
  ViT; pooled and patch features.
- :mod:`.knn`, :mod:`.linear`: cosine k-NN and logistic-regression probes.
- :mod:`.metrics`: accuracy, balanced accuracy, per-class recall.
- :mod:`.splits`: stratified folds, splits by image, seeded subsets.
- :mod:`.celltype`, :mod:`.dense`: the two tasks' data.
- :mod:`.run`: :func:`run_probes`, what ``dama-det probe`` runs.

Imports of this package are light; torch/timm load with the submodules.
"""
from __future__ import annotations

__all__ = ["run_probes", "TASKS"]

TASKS = ("celltype", "dense")


def run_probes(*args, **kwargs):
    """See :func:`dama_det.probe.run.run_probes`."""
    from .run import run_probes as _run

    return _run(*args, **kwargs)
