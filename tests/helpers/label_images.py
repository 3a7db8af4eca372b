"""Random label images shared by the COCO-label and mapper tests."""
from __future__ import annotations

import numpy as np


def random_label_image(seed: int, shape=(96, 128), n_cells=150, sparse_ids=True) -> np.ndarray:
    """Touching Voronoi cells (some cut by background), ids non-contiguous if asked."""
    rng = np.random.default_rng(seed)
    h, w = shape
    seeds = np.stack([rng.integers(0, h, n_cells), rng.integers(0, w, n_cells)], axis=1)
    yy, xx = np.mgrid[:h, :w]
    d2 = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    nearest = d2.argmin(axis=-1)
    ids = (rng.choice(np.arange(1, 50 * n_cells), n_cells, replace=False) if sparse_ids
           else np.arange(1, n_cells + 1))
    labels = ids[nearest].astype(np.int32)
    labels[rng.random(shape) < 0.15] = 0  # background holes, some cells split in parts
    labels[: h // 8] = 0  # a background band
    return labels
