"""Prediction: sliding-window tiled inference with instance merging, the Mask R-CNN
tile predictor, and outputs (label images, COCO results, overlays).

Every name below is imported on first access (``from dama_det.inference import
predict_tiles`` works), so that :mod:`.options` (the ``predict`` / ``classical`` command
options) loads without numpy or torch; :mod:`.predictor` (torch, Detectron2) is
imported on use: ``from dama_det.inference.predictor import MaskRCNNTilePredictor``.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "merge_tile_detections": "merge",
    "paint_labels": "merge",
    "crop_to_rle": "outputs",
    "detections_to_coco_results": "outputs",
    "render_overlay": "outputs",
    "make_tile_grid": "tiling",
    "predict_image_tiled": "tiling",
    "predict_tiles": "tiling",
    "Detection": "types",
    "Tile": "types",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
