"""Labelled subsets of a COCO training set, for few-label experiments.

Self-supervised pretraining should pay off most when few images are annotated. A
subset keeps whole images (every instance of a chosen image, none of the others: the
split is stratified by image, as an annotator would label image by image). The images
are taken in the order of one seeded permutation, so for one seed the subsets are
nested (the 10 % images are among the 25 % images) and identical for every method.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DamaUserError
from ..utils.io import atomic_write_json


def seeded_share(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Positions of a ``fraction`` of ``n`` items: the first ``round(fraction * n)`` (at
    least one) of a permutation drawn from ``rng``. For one generator state the shares
    of different fractions are nested. ``fraction`` is checked by the caller.

    Returns:
        ``(k,)`` int64 positions into the ``n`` items, in permutation order.
    """
    return rng.permutation(n)[:max(1, math.floor(fraction * n + 0.5))]


def label_subset(coco: dict[str, Any], fraction: float, seed: int) -> dict[str, Any]:
    """The COCO dict restricted to a seeded ``fraction`` of its images.

    Args:
        coco: a COCO instances dict (``images``, ``annotations``, ...).
        fraction: share of the images kept, in (0, 1]; at least one image is kept.
        seed: seed of the image permutation.

    Returns:
        A new dict with the chosen images (original order) and their annotations; other
        top-level keys are copied. ``info.label_fraction`` / ``info.label_seed`` record
        the choice.

    Raises:
        DamaUserError: fraction outside (0, 1] or no images.
    """
    if not 0 < fraction <= 1:
        raise DamaUserError(f"label fraction must be in (0, 1], got {fraction}")
    images = coco.get("images") or []
    if not images:
        raise DamaUserError("cannot take a labelled subset of a dataset without images")
    ids = sorted(int(im["id"]) for im in images)
    keep = {ids[i] for i in seeded_share(len(ids), fraction, np.random.default_rng(seed))}
    out = {key: value for key, value in coco.items() if key not in ("images", "annotations")}
    out["images"] = [im for im in images if int(im["id"]) in keep]
    out["annotations"] = [a for a in coco.get("annotations", []) if int(a["image_id"]) in keep]
    out["info"] = {**(coco.get("info") or {}), "label_fraction": fraction, "label_seed": seed}
    return out


def write_label_subset(src: str | os.PathLike, fraction: float, seed: int,
                       out: str | os.PathLike) -> Path:
    """Write :func:`label_subset` of the COCO json ``src`` to ``out`` (atomically).

    Image ``file_name`` entries are made absolute, so ``out`` may live in another folder.

    Returns:
        The written path.
    """
    from .coco_labels import load_coco_json

    src = Path(src)
    coco = label_subset(load_coco_json(src), fraction, seed)
    for im in coco["images"]:
        path = Path(im["file_name"])
        if not path.is_absolute():
            im["file_name"] = str((src.parent / path).resolve())
    return atomic_write_json(out, coco)
