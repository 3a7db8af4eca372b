"""Tiny pretraining inputs: blob crops on disk and the short ``dama-det pretrain`` options
the pretraining, CLI and output-folder tests share."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dama_det.data.tiff_io import write_ome_tiff


def blob_images(n: int, channels: int = 7, size: int = 32, seed: int = 0) -> np.ndarray:
    """Cell-like images: one Gaussian blob per channel, in [0, 1], ``(n, C, S, S)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, channels, size, size), np.float32)
    for i in range(n):
        for c in range(channels):
            cy, cx = rng.uniform(size * 0.2, size * 0.8, 2)
            r = rng.uniform(size / 10, size / 4.5)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            out[i, c] = blob * rng.uniform(0.3, 1.0)
    return out


def write_crops(folder: Path, n: int, channels: int = 7, size: int = 32) -> Path:
    """``n`` uint16 OME-TIFF crops in two class sub-folders."""
    for i, img in enumerate(blob_images(n, channels, size)):
        write_ome_tiff(folder / f"type{i % 2}" / f"crop{i:03d}.ome.tif",
                       (img * 65535).astype(np.uint16),
                       [f"ch{c}" for c in range(channels)])
    return folder


def small_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--output-dir", str(out), "--model", "test", "--img-size", "32",
            "--patch-size", "8", "--mask-ratio", "0.75", "--batch-size", "2", "--num-workers", "0",
            "--no-progress", "--vis-every", "0", "--warmup-epochs", "1", "--lr", "1e-3", *extra]
