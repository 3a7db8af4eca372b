"""Prediction outputs: COCO results (compressed RLE from crops), label images, overlays.

COCO RLE runs over the image in column-major order, so the RLE of an instance can be
built from its crop alone (runs of each crop column shifted to the column's offset in
the full image): encoding costs O(crop), never O(image), per instance.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ..utils import atomic_write_bytes
from .tiling import Detection

CATEGORY = {"id": 1, "name": "cell"}

# Display colours (RGB, 0-1) of the first channels in overlays; further channels cycle.
CHANNEL_COLOURS = np.array(
    [
        [0.0, 0.35, 1.0],  # DAPI: blue
        [0.6, 0.6, 0.6],  # Histones: grey
        [0.0, 1.0, 0.0],  # NeuN: green
        [1.0, 0.0, 0.0],  # S100: red
        [1.0, 0.0, 1.0],  # Olig2: magenta
        [1.0, 1.0, 0.0],  # Iba1: yellow
        [0.0, 1.0, 1.0],  # RECA1: cyan
    ],
    dtype=np.float32,
)


def crop_to_rle(det: Detection, height: int, width: int) -> dict[str, Any]:
    """COCO compressed RLE of a crop detection placed in an ``height x width`` image.

    Args:
        det: detection with ``box`` in image coordinates and bool ``mask`` crop.
        height: image height.
        width: image width.

    Returns:
        ``{"size": [H, W], "counts": str}`` identical to ``pycocotools.mask.encode`` of
        the full-image mask.
    """
    x0, y0, x1, y1 = det.box
    h = y1 - y0
    col = np.zeros((x1 - x0, h + 2), dtype=np.int8)
    col[:, 1:-1] = det.mask.T  # columns of the crop, each padded with a 0 both ends
    edges = np.diff(col, axis=1)
    cs, starts = np.nonzero(edges == 1)  # starts[k] is a row offset inside column cs[k]
    _, ends = np.nonzero(edges == -1)
    base = (x0 + cs).astype(np.int64) * height + y0
    s, e = base + starts, base + ends
    # column runs that touch (a run ending at the bottom of one image column and the
    # next starting at the top of the next) are one run in the flattened image
    if s.size > 1:
        joined = s[1:] == e[:-1]
        if joined.any():
            keep_start = np.concatenate([[True], ~joined])
            keep_end = np.concatenate([~joined, [True]])
            s, e = s[keep_start], e[keep_end]
    bounds = np.empty(2 * s.size + 1, dtype=np.int64)
    bounds[0] = 0
    bounds[1::2] = s
    bounds[2::2] = e
    counts = np.diff(np.concatenate([bounds, [height * width]])).tolist()
    if len(counts) > 1 and counts[-1] == 0:  # the last run ends at the last pixel
        counts.pop()
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def detections_to_coco_results(
    dets: Sequence[Detection],
    image_id: int,
    height: int,
    width: int,
    *,
    category_id: int = 1,
    start_id: int = 1,
    start_label: int = 1,
) -> list[dict[str, Any]]:
    """COCO detection results (one dict per instance) of an image's detections.

    Args:
        dets: detections in image coordinates.
        image_id: the image's COCO id.
        height: image height.
        width: image width.
        category_id: the category of every instance.
        start_id: ``id`` of the first result.
        start_label: label-image value of the first detection.

    Returns:
        Dicts with ``id, image_id, category_id, segmentation`` (compressed RLE, counts a
        str), ``bbox`` (XYWH of the mask's pixels), ``area`` (pixels), ``score``,
        ``iscrowd`` 0 and ``label`` (``start_label + k``: the instance's value in the
        label image painted from ``dets``, as in :mod:`dama_det.data.coco_labels`).
    """
    out = []
    for k, det in enumerate(dets):
        x0, y0, x1, y1 = det.box
        out.append(
            {
                "id": start_id + k,
                "image_id": int(image_id),
                "category_id": int(category_id),
                "segmentation": crop_to_rle(det, height, width),
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "area": int(np.count_nonzero(det.mask)),
                "score": round(float(det.score), 5),
                "iscrowd": 0,
                "label": start_label + k,
            }
        )
    return out


def _display_scale(channel: np.ndarray) -> np.ndarray:
    """Map a channel's 1st-99.8th percentiles to 0-1 for display (on a subsample)."""
    step = max(1, int(np.sqrt(channel.size / 1_000_000)))
    lo, hi = (float(v) for v in np.percentile(channel[::step, ::step], [1.0, 99.8]))
    out = (channel.astype(np.float32) - lo) / max(hi - lo, 1e-6)  # python floats keep float32
    return np.clip(out, 0.0, 1.0, out=out)


def render_overlay(
    image: np.ndarray,
    labels: np.ndarray,
    outline_rgb: tuple[int, int, int] = (255, 255, 0),
) -> np.ndarray:
    """A channel composite with instance outlines drawn on top.

    Args:
        image: ``(C, H, W)`` image (any scale; each channel is stretched for display).
        labels: ``(H, W)`` label image.
        outline_rgb: colour of the outlines.

    Returns:
        uint8 ``(H, W, 3)`` RGB image.
    """
    from skimage.segmentation import find_boundaries

    c, h, w = image.shape
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    if c == 1:
        rgb += _display_scale(image[0])[..., None]
    else:
        for i in range(c):
            rgb += _display_scale(image[i])[..., None] * CHANNEL_COLOURS[i % len(CHANNEL_COLOURS)]
    out = (np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
    out[find_boundaries(labels, mode="inner")] = outline_rgb
    return out


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB image as PNG, atomically."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    return atomic_write_bytes(path, buf.tobytes())
