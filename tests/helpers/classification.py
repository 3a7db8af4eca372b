"""Classification inputs shared by the dataset, model and ``dama-det classify`` tests:
class-separable crop folders and tiny encoder exports."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from timm.models.vision_transformer import VisionTransformer

from dama_det.data.tiff_io import write_ome_tiff
from dama_det.encoder_export.format import save_encoder_export

CLASSES = ("astrocyte", "endothelial", "microglia", "neuron", "oligodendrocyte")


def make_class_crops(root: Path, n_per_class: int = 9, size: int = 64, chans: int = 7,
                     classes=CLASSES, seed: int = 0) -> Path:
    """Write class-separable uint16 crops: a DAPI blob plus one marker channel per class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for c, name in enumerate(classes):
        for i in range(n_per_class):
            img = rng.normal(2000, 500, (chans, size, size)).clip(0)
            cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
            r = rng.uniform(size * 0.1, size * 0.2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            img[0] += 30000 * blob
            img[1 + (c % (chans - 1))] += 30000 * blob
            write_ome_tiff(root / name / f"{name}_{i:03d}.ome.tif", img.astype(np.uint16))
    return root


def write_export(path, *, img_size=128, in_chans=7, embed_dim=64, drop=(), epoch=500):
    """A valid tiny export (timm encoder with no head), optionally without some keys."""
    enc = VisionTransformer(img_size=img_size, patch_size=16, in_chans=in_chans,
                            embed_dim=embed_dim, depth=2, num_heads=2, num_classes=0)
    state = {k: v for k, v in enc.state_dict().items() if k not in drop}
    save_encoder_export(path, state, img_size=img_size, patch_size=16, in_chans=in_chans,
                        embed_dim=embed_dim, depth=2, num_heads=2, epoch=epoch)
    return path
