"""Synthetic COCO ground truth and predictions (ellipses as RLE) for tests and benchmarks.

Ellipse masks are run-length encoded straight from their geometry (one foreground run
per image column, column-major as COCO RLE is), so hundreds of instances per image cost
microseconds each instead of encoding a full-size mask per instance.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pycocotools.mask as mask_util

from ..data.rle import pycocotools_rle, runs_to_rle


def ellipse_rle(cy: float, cx: float, ry: float, rx: float, height: int, width: int) -> dict:
    """Compressed RLE (``counts`` str) of the pixels ``((y-cy)/ry)^2 + ((x-cx)/rx)^2 <= 1``.

    Args:
        cy, cx: centre (pixel coordinates). ry, rx: radii (> 0). height, width: image size.

    Returns:
        ``{"size": [height, width], "counts": str}`` (may be an empty mask).
    """
    xs = np.arange(max(int(np.ceil(cx - rx)), 0), min(int(np.floor(cx + rx)), width - 1) + 1)
    d = 1.0 - ((xs - cx) / rx) ** 2
    half = ry * np.sqrt(np.clip(d, 0.0, None))
    lo = np.maximum(np.ceil(cy - half), 0).astype(np.int64)
    hi = np.minimum(np.floor(cy + half), height - 1).astype(np.int64)
    keep = (d >= 0) & (hi >= lo)
    starts = xs[keep] * height + lo[keep]
    ends = xs[keep] * height + hi[keep] + 1
    counts: list[int] = []
    pos = 0
    for s, e in zip(starts.tolist(), ends.tolist()):
        if counts and s == pos:  # run continues into the next column
            counts[-1] += e - s
        else:
            counts += [s - pos, e - s]
        pos = e
    counts.append(height * width - pos)
    return runs_to_rle(counts, height, width)


def make_synthetic_case(
    n_images: int = 4,
    instances: tuple[int, int] = (120, 160),
    size: tuple[int, int] = (256, 256),
    radius: tuple[float, float] = (3.0, 9.0),
    shift_sigma: float = 1.0,
    drop_fraction: float = 0.1,
    false_positive_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Random ellipse "cells" and perturbed predictions with scores.

    Predictions: each kept instance's ellipse shifted by N(0, shift_sigma) pixels and
    scaled by U(0.85, 1.15), with a score that falls with the perturbation plus noise;
    ``drop_fraction`` of instances are missed; ``false_positive_fraction`` * N extra
    random ellipses are added.

    Args:
        n_images: number of images. instances: (min, max) instances per image.
        size: (H, W). radius: (min, max) ellipse radius. seed: RNG seed.

    Returns:
        (ground-truth COCO dict, list of COCO results with bbox + segmentation + score).
    """
    rng = np.random.default_rng(seed)
    height, width = size
    images, gts, dets = [], [], []
    next_id = 1

    def add_det(image_id, rle, score):
        b = pycocotools_rle(rle)
        if mask_util.area(b) == 0:
            return
        dets.append({"image_id": image_id, "category_id": 1, "segmentation": rle,
                     "bbox": mask_util.toBbox(b).tolist(), "score": float(score)})

    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "file_name": f"img_{image_id:03d}.tif",
                       "height": height, "width": width, "channels": 1})
        n = int(rng.integers(instances[0], instances[1] + 1))
        cy, cx = rng.uniform(0, height, n), rng.uniform(0, width, n)
        ry, rx = rng.uniform(*radius, n), rng.uniform(*radius, n)
        for k in range(n):
            rle = ellipse_rle(cy[k], cx[k], ry[k], rx[k], height, width)
            b = pycocotools_rle(rle)
            area = float(mask_util.area(b))
            if area == 0:
                continue
            gts.append({"id": next_id, "image_id": image_id, "category_id": 1,
                        "segmentation": rle, "bbox": mask_util.toBbox(b).tolist(),
                        "area": area, "iscrowd": 0})
            next_id += 1
            if rng.random() < drop_fraction:
                continue
            dy, dx = rng.normal(0.0, shift_sigma, 2)
            scale = rng.uniform(0.85, 1.15)
            quality = np.hypot(dy, dx) / max(ry[k], rx[k]) + abs(scale - 1.0)
            add_det(image_id, ellipse_rle(cy[k] + dy, cx[k] + dx, ry[k] * scale,
                                          rx[k] * scale, height, width),
                    np.clip(1.0 - quality + rng.normal(0, 0.15), 0.01, 1.0))
        for _ in range(int(round(n * false_positive_fraction))):
            add_det(image_id, ellipse_rle(rng.uniform(0, height), rng.uniform(0, width),
                                          rng.uniform(*radius), rng.uniform(*radius),
                                          height, width), rng.uniform(0.01, 0.7))
    gt = {"images": images, "annotations": gts, "categories": [{"id": 1, "name": "cell"}]}
    return gt, dets


def perfect_results(gt: dict[str, Any]) -> list[dict[str, Any]]:
    """Results identical to the ground truth (score 1), for sanity checks."""
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0,
             "bbox": list(a["bbox"]), "segmentation": dict(a["segmentation"])}
            for a in gt["annotations"]]
