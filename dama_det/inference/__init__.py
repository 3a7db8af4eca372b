"""Prediction: sliding-window tiled inference with instance merging, the Mask R-CNN
tile predictor, and outputs (label images, COCO results, overlays).

Light modules are imported here; :mod:`.predictor` (torch, Detectron2) is imported on
use: ``from dama_det.inference.predictor import MaskRCNNTilePredictor``.
"""
from .merge import merge_tile_detections, paint_labels
from .outputs import crop_to_rle, detections_to_coco_results, render_overlay
from .tiling import make_tile_grid, predict_image_tiled, predict_tiles
from .types import Detection, Tile

__all__ = [
    "Detection",
    "Tile",
    "crop_to_rle",
    "detections_to_coco_results",
    "make_tile_grid",
    "merge_tile_detections",
    "paint_labels",
    "predict_image_tiled",
    "predict_tiles",
    "render_overlay",
]
