"""Predict at 2x scale (floor study F8 / F9): upsample images 2x, pool label images back.

    python benchmarks/floor/rescale_2x.py up   IN_DIR OUT_DIR   # <name>.tif, bilinear 2x
    dama-det predict OUT_DIR --weights model_final.pth --score-thresh 0.5 --out PRED_X2
    python benchmarks/floor/rescale_2x.py down PRED_X2 PRED     # <name>_masks.tif, 2x2 pooled

``up`` resizes every ``<name>.tif`` (not ``*_masks.tif``) with bilinear interpolation on
pixel centres (``torch.nn.functional.interpolate``, ``align_corners=False``), rounded back
to the input dtype. ``down`` gives each instance of a 2x label image the native pixels whose
2 x 2 block it covers at least half of (the lower label wins a tie), so an unbiased 2x mask
keeps its area. The pooled labels go to ``iou_by_size.py`` beside native predictions.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tifffile
import torch
import torch.nn.functional as F


def upsample(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` -> ``(2H, 2W[, C])``, bilinear, in the input's dtype."""
    t = torch.from_numpy(image.astype(np.float32))
    t = t[None, None] if image.ndim == 2 else t.permute(2, 0, 1)[None]
    up = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)[0]
    up = up[0] if image.ndim == 2 else up.permute(1, 2, 0)
    out = up.round().numpy()
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(out, info.min, info.max)
    return out.astype(image.dtype)


def pool_labels(labels: np.ndarray) -> np.ndarray:
    """``(2H, 2W)`` label image -> ``(H, W)``: each instance keeps the 2 x 2 blocks it
    covers at least half of; where two qualify (2 + 2 pixels) the lower label wins."""
    h, w = labels.shape[0] // 2, labels.shape[1] // 2
    blocks = labels[:2 * h, :2 * w].reshape(h, 2, w, 2).transpose(0, 2, 1, 3).reshape(h, w, 4)
    out = np.zeros((h, w), labels.dtype)
    for lab in np.unique(labels):
        if lab == 0:
            continue
        keep = (blocks == lab).mean(-1) >= 0.5
        out[keep & (out == 0)] = lab
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("up", "down"), help="up: images 2x; down: labels pooled")
    p.add_argument("src", type=Path, help="folder of <name>.tif (up) or <name>_masks.tif (down)")
    p.add_argument("dst", type=Path, help="output folder (created)")
    args = p.parse_args()
    if args.mode == "up":
        files = sorted(f for f in args.src.glob("*.tif") if not f.name.endswith("_masks.tif"))
    else:
        files = sorted(args.src.glob("*_masks.tif"))
    if not files:
        what = "images (*.tif)" if args.mode == "up" else "label images (*_masks.tif)"
        sys.exit(f"error: no {what} in {args.src}")
    args.dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        image = tifffile.imread(f)
        tifffile.imwrite(args.dst / f.name, upsample(image) if args.mode == "up"
                         else pool_labels(image))
    print(f"wrote {len(files)} files to {args.dst}")


if __name__ == "__main__":
    main()
