"""Per-channel mean and standard deviation of a set of images after intensity scaling.

The detector standardises its input with ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD``. With the
paper's plain ``/255`` scaling a dark fluorescence image has intensities around 0.05,
so the ViT's patch embedding gives tokens an order of magnitude smaller than its
position embedding; standardising with the training set's statistics fixes the scale
(measured in BENCHMARKS.md, "Input standardisation"). Pretraining uses the same
statistics of its crops (``dama-det pretrain --pixel-stats data``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from ..errors import DamaUserError

#: std below this (a constant channel) is replaced by 1.0: nothing to standardise.
MIN_STD = 1e-6


def pixel_stats(
    paths: Sequence[Any],
    load: Callable[[Any], np.ndarray],
    *,
    max_images: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> tuple[list[float], list[float]]:
    """Pixel-weighted per-channel mean and std of (a seeded sample of) images.

    Args:
        paths: image files (or any keys ``load`` understands, e.g. dataset indexes).
        load: reads one image as a scaled float ``(C, H, W)`` array.
        max_images: at most this many images are read (a seeded random sample).
        seed: seed of the sample.
        progress: tqdm bar.

    Returns:
        ``(mean, std)``, one float per channel (std of a constant channel is 1.0),
        rounded to 6 significant digits.

    Raises:
        DamaUserError: no image, or images with different channel counts.
    """
    if not paths:
        raise DamaUserError("cannot compute pixel statistics: no training images")
    order = np.arange(len(paths))
    if len(paths) > max_images:
        order = np.sort(np.random.default_rng(seed).choice(len(paths), max_images, replace=False))
    total = sq = None
    count = 0
    for i in tqdm(order, desc="pixel statistics", unit="img", disable=not progress, leave=False):
        image = np.asarray(load(paths[i]), dtype=np.float64)
        flat = image.reshape(image.shape[0], -1)
        if total is None:
            total, sq = np.zeros(flat.shape[0]), np.zeros(flat.shape[0])
        elif flat.shape[0] != total.shape[0]:
            raise DamaUserError(f"{paths[i]}: {flat.shape[0]} channel(s), but earlier images "
                                f"have {total.shape[0]}")
        total += flat.sum(axis=1)
        sq += np.square(flat).sum(axis=1)
        count += flat.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - mean**2, 0.0))
    std = np.where(std < MIN_STD, 1.0, std)
    return [float(f"{v:.6g}") for v in mean], [float(f"{v:.6g}") for v in std]
