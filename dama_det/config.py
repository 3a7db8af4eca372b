"""``add_dama_config(cfg)``: every config key dama_det adds to Detectron2's defaults.

Input images are N-channel TIFFs scaled to [0, 1] (the paper uses no mean/std
normalisation), so configs set ``MODEL.PIXEL_MEAN = [0.0] * C`` and
``MODEL.PIXEL_STD = [1.0] * C``; the channel count everywhere is ``len(PIXEL_MEAN)``.
"""
from __future__ import annotations

from detectron2.config import CfgNode as CN

DEFAULT_CHANNEL_NAMES = ["DAPI", "Histones", "NeuN", "S100", "Olig2", "Iba1", "RECA1"]


def add_dama_config(cfg: CN) -> CN:
    """Add dama_det's keys (input handling, DAMA ViT backbone) to ``cfg`` in place.

    Args:
        cfg: a Detectron2 config from ``detectron2.config.get_cfg()``.

    Returns:
        The same ``cfg``, for chaining.
    """
    # ---- input: N-channel TIFF images ----
    cfg.INPUT.FORMAT = "N"  # images are N-channel float arrays, not BGR/RGB
    cfg.INPUT.MASK_FORMAT = "bitmask"  # instance masks as bitmaps (from COCO RLE)
    cfg.INPUT.CHANNEL_NAMES = list(DEFAULT_CHANNEL_NAMES)  # names of the input channels, in order
    cfg.INPUT.INTENSITY_SCALING = "dtype_max"  # "dtype_max" (/255, /65535), "percentile" or "none"
    cfg.INPUT.PERCENTILE_RANGE = (1.0, 99.8)  # low/high percentiles for "percentile" scaling
    cfg.INPUT.HFLIP = True  # random horizontal flip during training
    cfg.INPUT.VFLIP = True  # random vertical flip during training
    cfg.INPUT.ROT90 = True  # random 0/90/180/270 degree rotation during training
    cfg.INPUT.LSJ = CN()  # large-scale jitter (ViTDet): random resize then fixed-size crop/pad
    cfg.INPUT.LSJ.ENABLED = True  # use scale jitter + fixed-size crop instead of ResizeShortestEdge
    cfg.INPUT.LSJ.IMAGE_SIZE = 256  # side of the square training crop (pixels)
    cfg.INPUT.LSJ.SCALE_RANGE = (0.1, 2.0)  # min/max random scale relative to IMAGE_SIZE
    cfg.INPUT.PAD_VALUE = 0.0  # value used to pad images after scaling
    cfg.MODEL.PIXEL_MEAN = [0.0] * len(DEFAULT_CHANNEL_NAMES)
    cfg.MODEL.PIXEL_STD = [1.0] * len(DEFAULT_CHANNEL_NAMES)
    return cfg
