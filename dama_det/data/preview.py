"""Colour composites of multiplexed images and the synthetic dataset's preview.png.

Each channel gets a colour (by channel name when it is a known marker), is scaled
between its 30th percentile (about the tissue background) and its 99.9th percentile,
and the coloured channels are added, as in a
fluorescence viewer. Instance outlines can be drawn on top.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

# Viewer colours (RGB, 0-1) per marker; unknown channels get a palette colour.
CHANNEL_COLOURS: dict[str, tuple[float, float, float]] = {
    "DAPI": (0.15, 0.35, 1.0),
    "Histones": (0.25, 0.25, 0.35),
    "NeuN": (1.0, 0.85, 0.1),
    "S100": (0.1, 1.0, 0.25),
    "Olig2": (1.0, 0.15, 0.85),
    "Iba1": (1.0, 0.25, 0.1),
    "RECA1": (0.1, 0.9, 1.0),
}
_PALETTE = [(0.2, 0.4, 1.0), (1.0, 0.8, 0.1), (0.1, 1.0, 0.3), (1.0, 0.2, 0.8),
            (1.0, 0.3, 0.1), (0.1, 0.9, 1.0), (0.7, 0.7, 0.7)]
# Outline colour per cell type (matches the marker's colour).
TYPE_COLOURS: dict[str, tuple[float, float, float]] = {
    "neuron": (1.0, 0.9, 0.3),
    "astrocyte": (0.3, 1.0, 0.4),
    "oligodendrocyte": (1.0, 0.4, 0.9),
    "microglia": (1.0, 0.45, 0.3),
    "endothelial": (0.3, 0.95, 1.0),
}


def channel_colours(channel_names: Sequence[str]) -> np.ndarray:
    """``(C, 3)`` display colours for the given channel names."""
    return np.array(
        [CHANNEL_COLOURS.get(n, _PALETTE[i % len(_PALETTE)]) for i, n in enumerate(channel_names)],
        np.float32,
    )


def composite_rgb(
    image: np.ndarray,
    channel_names: Sequence[str],
    *,
    low: float = 30.0,
    high: float = 99.9,
    limits: np.ndarray | None = None,
) -> np.ndarray:
    """Additive colour composite of a multi-channel image.

    Args:
        image: ``(C, H, W)`` array (any numeric dtype).
        channel_names: ``C`` names (pick colours).
        low, high: percentiles mapped to black and full colour, per channel.
        limits: optional ``(C, 2)`` fixed (low, high) intensities instead of percentiles.

    Returns:
        ``(H, W, 3)`` float32 in [0, 1].
    """
    img = np.asarray(image, np.float32)
    if limits is None:
        limits = channel_limits(img, low, high)
    colours = channel_colours(channel_names)
    lo = limits[:, 0][:, None, None]
    hi = limits[:, 1][:, None, None]
    scaled = np.clip((img - lo) / np.maximum(hi - lo, 1e-6), 0, 1)
    rgb = np.tensordot(scaled, colours, axes=([0], [0]))
    return np.clip(rgb, 0, 1)


def channel_limits(image: np.ndarray, low: float = 30.0, high: float = 99.9) -> np.ndarray:
    """``(C, 2)`` per-channel percentile limits of a ``(C, H, W)`` image."""
    flat = np.asarray(image, np.float32).reshape(image.shape[0], -1)
    return np.stack([np.percentile(flat, low, axis=1), np.percentile(flat, high, axis=1)], 1)


def draw_outlines(
    rgb: np.ndarray,
    labels: np.ndarray,
    colours: np.ndarray | None = None,
) -> np.ndarray:
    """Draw instance outlines onto an RGB image.

    Args:
        rgb: ``(H, W, 3)`` float image in [0, 1].
        labels: ``(H, W)`` int instance labels.
        colours: optional ``(N + 1, 3)`` colour per label value (row 0 unused);
            white when None.

    Returns:
        A new ``(H, W, 3)`` image.
    """
    from skimage.segmentation import find_boundaries

    out = rgb.copy()
    edge = find_boundaries(labels, mode="inner")
    if colours is None:
        out[edge] = 1.0
    else:
        out[edge] = 0.25 * out[edge] + 0.75 * colours[labels[edge]]
    return out


def write_dataset_preview(
    path: str | os.PathLike,
    tile: np.ndarray,
    labels: np.ndarray,
    cell_types: Sequence[str],
    crops_by_type: Mapping[str, Sequence[np.ndarray]],
    channel_names: Sequence[str],
    *,
    crops_per_row: int = 8,
) -> Path:
    """Write the synthetic dataset's preview.png.

    Top: one tile as a colour composite, without and with instance outlines (coloured
    by cell type). Below: one row of example crops per cell type. A legend names the
    channel colours.

    Args:
        path: output PNG.
        tile: ``(C, H, W)`` image.
        labels: ``(H, W)`` instance labels of the tile.
        cell_types: type of each label (``cell_types[k - 1]`` for label k).
        crops_by_type: type -> list of ``(C, h, w)`` crops.
        channel_names: ``C`` channel names.
        crops_per_row: crops shown per type.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ..utils import atomic_write_bytes

    limits = channel_limits(tile)
    rgb = composite_rgb(tile, channel_names, limits=limits)
    type_col = np.array([(1, 1, 1)] + [TYPE_COLOURS.get(t, (1, 1, 1)) for t in cell_types],
                        np.float32)
    outlined = draw_outlines(rgb, labels, type_col)

    types = list(crops_by_type)
    n_rows = len(types)
    fig = plt.figure(figsize=(12, 6 + 1.5 * n_rows), dpi=110, facecolor="black")
    grid = fig.add_gridspec(1 + n_rows, crops_per_row, height_ratios=[4.0] + [1.0] * n_rows,
                            hspace=0.12, wspace=0.05)
    half = crops_per_row // 2
    for k, (im, title) in enumerate([(rgb, "composite"), (outlined, "instances (outline colour = type)")]):
        ax = fig.add_subplot(grid[0, k * half:(k + 1) * half])
        ax.imshow(im, interpolation="nearest")
        ax.set_title(title, color="white", fontsize=10)
        ax.axis("off")
    for r, t in enumerate(types):
        crops = list(crops_by_type[t])[:crops_per_row]
        for j in range(crops_per_row):
            ax = fig.add_subplot(grid[1 + r, j])
            ax.axis("off")
            if j < len(crops):
                ax.imshow(composite_rgb(crops[j], channel_names, limits=limits),
                          interpolation="nearest")
            if j == 0:
                ax.text(-0.08, 0.5, t, transform=ax.transAxes, rotation=90, color="white",
                        ha="right", va="center", fontsize=9)
    cols = channel_colours(channel_names)
    handles = [Patch(color=cols[i], label=n) for i, n in enumerate(channel_names)]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
               labelcolor="white", fontsize=9)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="black", bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
