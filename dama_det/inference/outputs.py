"""Prediction outputs: COCO results (compressed RLE from crops), label images, overlays.

The RLE of an instance is built from its crop alone by
:func:`dama_det.data.rle.encode_crop_rle` (the same encoder as the label image -> COCO
conversion): encoding costs O(crop), never O(image), per instance.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.composite import OVERLAY_COLOURS, channel_limits, composite_rgb, cycled_colours
from ..data.rle import encode_crop_rle
from ..utils import atomic_write_bytes
from .types import Detection

CATEGORY = {"id": 1, "name": "cell"}
#: Overlay display limits (each channel's 1st-99.8th percentile) are measured on a
#: subsample of about this many pixels.
OVERLAY_LIMIT_PIXELS = 1_000_000


def crop_to_rle(det: Detection, height: int, width: int) -> dict[str, Any]:
    """COCO compressed RLE of a crop detection placed in an ``height x width`` image.

    Args:
        det: detection with ``box`` in image coordinates and bool ``mask`` crop
            ``(y1 - y0, x1 - x0)``.
        height: image height.
        width: image width.

    Returns:
        ``{"size": [H, W], "counts": str}`` identical to ``pycocotools.mask.encode`` of
        the full-image mask (see :func:`dama_det.data.rle.encode_crop_rle`).
    """
    x0, y0, _, _ = det.box
    return encode_crop_rle(det.mask, x0, y0, height, width)


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


def render_overlay(
    image: np.ndarray,
    labels: np.ndarray,
    outline_rgb: tuple[int, int, int] = (255, 255, 0),
) -> np.ndarray:
    """A channel composite with instance outlines drawn on top.

    Each channel's 1st-99.8th percentiles are stretched to 0-1 and tinted with its
    :data:`~dama_det.data.composite.OVERLAY_COLOURS` entry (one channel: grey).

    Args:
        image: ``(C, H, W)`` image (any scale; each channel is stretched for display).
        labels: ``(H, W)`` label image.
        outline_rgb: colour of the outlines.

    Returns:
        uint8 ``(H, W, 3)`` RGB image.
    """
    from skimage.segmentation import find_boundaries

    c = image.shape[0]
    colours = np.ones((1, 3), np.float32) if c == 1 else cycled_colours(OVERLAY_COLOURS, c)
    limits = channel_limits(image, 1.0, 99.8, max_pixels=OVERLAY_LIMIT_PIXELS)
    out = (composite_rgb(image, colours, limits) * 255).astype(np.uint8)
    out[find_boundaries(labels, mode="inner")] = outline_rgb
    return out


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB image as PNG, atomically."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    return atomic_write_bytes(path, buf.tobytes())
