"""N-channel image and annotation I/O: TIFF / OME-TIFF files, label images <-> COCO,
intensity scaling, Detectron2 dataset registration and the N-channel dataset mapper.

Every name below is imported on first access (``from dama_det.data import
read_tiff`` works), so ``import dama_det.data`` stays fast for the command line; the
Detectron2 parts live in :mod:`.register`, :mod:`.mapper` and :mod:`.transforms`.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "annotations_to_label_image": "coco_labels",
    "encode_crop_rle": "rle",
    "paint_segmentations": "rle",
    "segmentation_runs": "rle",
    "coco_to_folder": "coco_labels",
    "folder_to_coco": "coco_labels",
    "label_image_to_annotations": "coco_labels",
    "load_coco_json": "coco_labels",
    "percentile_normalize": "normalize",
    "scale_by_dtype": "normalize",
    "scale_intensities": "normalize",
    "TiffHeader": "tiff_io",
    "TiffImage": "tiff_io",
    "read_image": "tiff_io",
    "read_label_image": "tiff_io",
    "read_tiff": "tiff_io",
    "read_tiff_header": "tiff_io",
    "write_label_image": "tiff_io",
    "write_ome_tiff": "tiff_io",
    "register_nchannel_coco": "register",
    "load_nchannel_coco_dicts": "register",
    "NChannelDatasetMapper": "mapper",
    "build_nchannel_augmentations": "transforms",
    "Rot90Transform": "transforms",
    "RandomRot90": "transforms",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
