"""Detector-training helpers shared by the train, checkpoint and output-folder tests: the
fastest schedule overrides and a tiny random encoder export."""
from __future__ import annotations

from pathlib import Path

from timm.models.vision_transformer import VisionTransformer

from dama_det.encoder_export.format import save_encoder_export

FAST = ["SOLVER.MAX_ITER", "2", "TEST.EVAL_PERIOD", "0", "SOLVER.STEPS", "(1,)"]



def tiny_export(path: Path, embed_dim: int = 64) -> Path:
    vit = VisionTransformer(img_size=128, patch_size=16, in_chans=7, embed_dim=embed_dim, depth=2,
                            num_heads=2, num_classes=0)
    return save_encoder_export(path, vit.state_dict(), img_size=128, patch_size=16, in_chans=7,
                               embed_dim=embed_dim, depth=2, num_heads=2)
