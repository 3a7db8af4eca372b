"""Reconstruction figures: input channels, both masks and both reconstructions.

Each row is one crop: every input channel in grey, a false-colour composite of the
input, student 1's mask and student 2's mask drawn over the composite (masked
patches darkened), and each student's reconstruction (visible patches from the
input, masked ones predicted) as a composite. With ``norm_pix_loss`` the predicted
patches are brought back to intensities with each true patch's mean and variance.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.composite import composite_rgb, cycled_colours
from ..utils import atomic_write_bytes
from .losses import patchify, unpatchify


def composite(image: np.ndarray) -> np.ndarray:
    """False-colour RGB of a ``(C, H, W)`` image: each channel from 0 to its 99.5th
    percentile in a tab10 hue, summed, and scaled down when the sum exceeds 1.

    Returns:
        ``(H, W, 3)`` float in [0, 1].
    """
    from matplotlib import colormaps

    high = np.percentile(image.reshape(image.shape[0], -1), 99.5, axis=1)
    high[high == 0] = 1.0  # an empty channel stays black
    limits = np.stack([np.zeros_like(high), high], axis=1)
    rgb = composite_rgb(image, cycled_colours(colormaps["tab10"].colors, image.shape[0]),
                        limits, clip=False)
    return np.clip(rgb / max(1.0, rgb.max()), 0, 1)


def reconstruction_images(
    imgs: torch.Tensor, mask: torch.Tensor, pred: torch.Tensor, patch_size: int, norm_pix: bool
) -> torch.Tensor:
    """Paste predicted masked patches into the input.

    Args:
        imgs: ``(N, C, H, W)``.
        mask: ``(N, L)`` 1 = masked.
        pred: ``(N, L, p * p * C)``.
        patch_size: ``p``.
        norm_pix: predictions are per-patch normalised (undo with the true statistics).

    Returns:
        ``(N, C, H, W)``.
    """
    target = patchify(imgs.float(), patch_size)
    pred = pred.float()
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        std = (target.var(dim=-1, keepdim=True, unbiased=False) + 1e-6) ** 0.5
        pred = pred * std + mean
    m = mask.float().unsqueeze(-1)
    mixed = target * (1 - m) + pred * m
    n, c, h, w = imgs.shape
    return unpatchify(mixed, patch_size, c, (h // patch_size, w // patch_size))


def save_reconstruction_figure(
    path: str | os.PathLike,
    imgs: torch.Tensor,
    outputs: dict,
    patch_size: int,
    norm_pix: bool,
    channel_names: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Write the figure as PNG (atomically).

    Args:
        path: output PNG.
        imgs: ``(N, C, H, W)`` the model's input.
        outputs: the model's outputs (``mask1``, ``pred1`` and optionally ``mask2``, ``pred2``).
        patch_size: ``p``.
        norm_pix: whether predictions are per-patch normalised.
        channel_names: column titles of the input channels.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imgs = imgs.detach().float().cpu()
    n, c, h, w = imgs.shape
    grid = (h // patch_size, w // patch_size)
    names = list(channel_names) if channel_names else [f"ch{i}" for i in range(c)]
    students = [k for k in ("1", "2") if f"mask{k}" in outputs]
    recon = {k: reconstruction_images(imgs, outputs[f"mask{k}"].cpu(), outputs[f"pred{k}"].cpu(),
                                      patch_size, norm_pix).numpy() for k in students}
    cols = c + 1 + 2 * len(students)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.7 * n), squeeze=False)
    for i in range(n):
        image = imgs[i].numpy()
        comp = composite(image)
        panels: list[tuple[str, np.ndarray, str | None]] = [
            (names[ch], image[ch], "gray") for ch in range(c)
        ]
        panels.append(("composite", comp, None))
        for k in students:
            m = outputs[f"mask{k}"][i].float().cpu().reshape(grid).numpy()
            m = np.kron(m, np.ones((patch_size, patch_size)))[..., None]
            visible = int((outputs[f"mask{k}"][i] < 0.5).sum())
            panels.append((f"mask {k} ({visible} visible)", comp * (1 - 0.8 * m), None))
        for k in students:
            panels.append((f"recon {k}", composite(recon[k][i]), None))
        for ax, (label, data, cmap) in zip(axes[i], panels):
            ax.imshow(data, cmap=cmap)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
