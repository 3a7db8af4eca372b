"""Test stand-ins for the predict tests: a thresholding + connected-components "model",
synthetic images of convex blobs with exact expected label images, the tiny config."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from dama_det.inference.types import Detection


def threshold_predictor(tile: np.ndarray) -> list[Detection]:
    """Instances = 8-connected components of ``tile[0] > 0.5``; score = mean intensity.

    Args:
        tile: ``(C, h, w)`` float image.

    Returns:
        Detections in tile coordinates.
    """
    fg = tile[0] > 0.5
    lab, n = ndimage.label(fg, structure=np.ones((3, 3), bool))
    out = []
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        mask = lab[sl] == i
        score = float(np.clip(tile[0][sl][mask].mean(), 0, 1))
        out.append(Detection((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop), mask, score))
    return out


def canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel instances 1..N in the raster order of their first pixel."""
    flat = labels.ravel()
    ids, first = np.unique(flat, return_index=True)
    ids = ids[ids > 0][np.argsort(first[ids > 0])] if ids.size else ids
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int32)
    lut[ids] = np.arange(1, ids.size + 1)
    return lut[labels]


def blob_image(size: int = 512, n_small: int = 60, big: list | None = None,
               channels: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Separated disks (diameter <= 25 px) plus optional big ellipses, and their labels.

    Args:
        size: image side.
        n_small: number of small disks attempted (placed without touching).
        big: ``[(cy, cx, ry, rx), ...]`` big ellipses (drawn first).
        channels: image channels (channel 0 holds the objects, intensity 0.6-1.0).
        seed: random seed.

    Returns:
        ``(image (C, size, size) float32, labels (size, size) int32)``.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    occupied = np.zeros((size, size), bool)
    objs = [(cy, cx, ry, rx) for cy, cx, ry, rx in (big or [])]
    tries = 0
    while len(objs) < len(big or []) + n_small and tries < 5000:
        tries += 1
        r = rng.uniform(4, 12.4)
        objs.append((rng.uniform(0, size), rng.uniform(0, size), r, r))
        m = ((yy - objs[-1][0]) / r) ** 2 + ((xx - objs[-1][1]) / r) ** 2 <= 1
        if not m.any() or ndimage.binary_dilation(occupied, iterations=2)[m].any():
            objs.pop()
            continue
        occupied |= m
    occupied[:] = False
    image = rng.uniform(0, 0.3, (channels, size, size)).astype(np.float32)
    for k, (cy, cx, ry, rx) in enumerate(objs, start=1):
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        if ndimage.binary_dilation(occupied, iterations=2)[m].any():
            continue
        occupied |= m
        labels[m] = k
        image[0][m] = rng.uniform(0.6, 1.0)
    return image, canonical(labels)


TINY_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "quick_schedules" / \
    "mask_rcnn_dama_vit_instant_test.yaml"


def tiny_cfg(channels: int = 7):
    """The instant-test config (ViT 64 wide, 2 blocks) for ``channels`` input channels."""
    from dama_det import get_dama_cfg

    cfg = get_dama_cfg()
    cfg.merge_from_file(str(TINY_CONFIG))
    cfg.MODEL.PIXEL_MEAN = [0.0] * channels
    cfg.MODEL.PIXEL_STD = [1.0] * channels
    return cfg
