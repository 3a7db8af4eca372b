"""Detection model parts. Importing this package registers the
``build_dama_vit_fpn_backbone`` backbone in Detectron2's ``BACKBONE_REGISTRY``."""
from .encoder_weights import EncoderLoadReport, convert_timm_to_vitdet, load_encoder_into_vit
from .frozen_encoder import freeze_vit
from .pixel_stem import PixelDetailStem
from .vit_backbone import build_dama_vit, build_dama_vit_fpn_backbone

__all__ = [
    "EncoderLoadReport",
    "PixelDetailStem",
    "build_dama_vit",
    "build_dama_vit_fpn_backbone",
    "convert_timm_to_vitdet",
    "freeze_vit",
    "load_encoder_into_vit",
]
