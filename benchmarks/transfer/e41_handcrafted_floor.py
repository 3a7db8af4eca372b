"""E41's handcrafted floor: the cell-type linear probe of `dama-det probe` on C numbers
per crop (7 for E41's crops, 2 for E49's nuclear ones), the per-channel mean intensity
of the whole crop or of its central square (same folds, same class-balanced logistic
regression).

    python benchmarks/transfer/e41_handcrafted_floor.py CROPS_DIR [SEED]
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import tifffile
import torch

from dama_det.probe.linear import linear_probe
from dama_det.probe.metrics import mean_metrics
from dama_det.probe.splits import stratified_folds


def channel_means(img: np.ndarray, side: int | None) -> np.ndarray:
    """``(C,)`` mean of each channel of a ``(C, H, W)`` crop, over its central
    ``side x side`` pixels (None: the whole crop)."""
    if side is None:
        return img.mean(axis=(1, 2))
    h, w = img.shape[1:]
    t, s = (h - side) // 2, (w - side) // 2
    return img[:, t:t + side, s:s + side].mean(axis=(1, 2))


def main(root: Path, seed: int = 0) -> None:
    rows = list(csv.DictReader((root / "labels.csv").open()))
    names = sorted({r["cell_type"] for r in rows})
    labels = np.array([names.index(r["cell_type"]) for r in rows])
    crops = [tifffile.imread(root / r["file"]).astype(np.float64) for r in rows]
    folds = stratified_folds(labels, 2, seed)
    y = torch.from_numpy(labels)
    print(f"| feature ({len(crops[0])} numbers per crop) | linear probe balanced accuracy (%) |\n"
          "|---|---|")
    for side in (None, 32, 16):
        x = torch.tensor(np.stack([channel_means(c, side) for c in crops]), dtype=torch.float32)
        res = [linear_probe(x[tr], y[tr], x[te], y[te], num_classes=len(names))
               for tr, te in folds]
        what = "whole crop" if side is None else f"central {side} x {side} px"
        print(f"| channel means, {what} | {100 * mean_metrics(res)['balanced_accuracy']:.1f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
