"""The synthetic dataset's preview.png: colour composites with instance outlines.

Each channel gets a colour (by channel name when it is a known marker), is scaled
between its 30th percentile (about the tissue background) and its 99.9th percentile,
and the coloured channels are added (:mod:`dama_det.data.composite`). Instance
outlines are drawn on top.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .composite import channel_colours, channel_limits, composite_rgb

# Outline colour per cell type (matches the marker's colour).
TYPE_COLOURS: dict[str, tuple[float, float, float]] = {
    "neuron": (1.0, 0.9, 0.3),
    "astrocyte": (0.3, 1.0, 0.4),
    "oligodendrocyte": (1.0, 0.4, 0.9),
    "microglia": (1.0, 0.45, 0.3),
    "endothelial": (0.3, 0.95, 1.0),
}


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


def _mark_centre(rgb: np.ndarray, colour: Sequence[float]) -> np.ndarray:
    """Draw four short ticks pointing at the centre of a crop (the labelled cell)."""
    out = rgb.copy()
    h, w = out.shape[:2]
    cy, cx = h // 2, w // 2
    r0, r1 = max(h // 9, 6), max(h // 6, 9)
    col = np.asarray(colour, np.float32)
    out[cy - r1:cy - r0, cx] = col
    out[cy + r0:cy + r1, cx] = col
    out[cy, cx - r1:cx - r0] = col
    out[cy, cx + r0:cx + r1] = col
    return out


def _tile_grid(images: Sequence[np.ndarray], n_cols: int, gap: int) -> np.ndarray:
    """Lay out equally sized ``(h, w, 3)`` images in a row-major grid on black."""
    h, w = images[0].shape[:2]
    n_rows = -(-len(images) // n_cols)
    out = np.zeros((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap, 3), np.float32)
    for k, im in enumerate(images):
        r, c = divmod(k, n_cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = im
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
    by cell type), and a legend of channel colours. Below: one row of example crops
    per cell type, labelled, shown with the tile's intensity limits; ticks point at
    the centre cell.

    Args:
        path: output PNG.
        tile: ``(C, H, W)`` image.
        labels: ``(H, W)`` instance labels of the tile.
        cell_types: type of each label (``cell_types[k - 1]`` for label k).
        crops_by_type: type -> list of ``(C, h, w)`` crops (may be empty).
        channel_names: ``C`` channel names.
        crops_per_row: crops shown per type.

    Returns:
        The written path.
    """
    import io

    from PIL import Image, ImageDraw

    from ..utils import atomic_write_bytes  # utils imports torch: load it only to write

    gap, label_w, legend_h = 6, 110, 22
    limits = channel_limits(tile)
    colours = channel_colours(channel_names)
    rgb = composite_rgb(tile, colours, limits)
    type_col = np.array([(1, 1, 1)] + [TYPE_COLOURS.get(t, (1, 1, 1)) for t in cell_types],
                        np.float32)
    top = _tile_grid([rgb, draw_outlines(rgb, labels, type_col)], 2, gap)
    rows = []
    for t, crops in crops_by_type.items():
        crops = list(crops)[:crops_per_row]
        if crops:
            ims = [_mark_centre(composite_rgb(c, colours, limits),
                                TYPE_COLOURS.get(t, (1, 1, 1))) for c in crops]
            rows.append((t, _tile_grid(ims, crops_per_row, gap)))
    width = label_w + max([top.shape[1]] + [r.shape[1] for _, r in rows])
    height = legend_h + top.shape[0] + sum(r.shape[0] + gap for _, r in rows) + gap
    canvas = np.zeros((height, width, 3), np.float32)
    y = legend_h
    canvas[y:y + top.shape[0], label_w:label_w + top.shape[1]] = top
    y += top.shape[0] + gap
    row_pos = []
    for t, r in rows:
        canvas[y:y + r.shape[0], label_w:label_w + r.shape[1]] = r
        row_pos.append((t, y + r.shape[0] // 2, TYPE_COLOURS.get(t, (1, 1, 1))))
        y += r.shape[0] + gap
    img = Image.fromarray((canvas * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(img)
    x = label_w
    for name, col in zip(channel_names, colours):
        fill = tuple(int(v * 255) for v in col)
        draw.rectangle([x, 5, x + 12, 17], fill=fill)
        draw.text((x + 16, 5), name, fill=(255, 255, 255))
        x += 22 + 7 * len(name) + 12
    draw.text((4, legend_h + 4), "composite", fill=(255, 255, 255))
    draw.text((4, legend_h + top.shape[0] // 2), "right: instances,", fill=(255, 255, 255))
    draw.text((4, legend_h + top.shape[0] // 2 + 14), "outline = type", fill=(255, 255, 255))
    for t, yc, col in row_pos:
        draw.text((4, yc - 6), t, fill=tuple(int(v * 255) for v in col))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return atomic_write_bytes(path, buf.getvalue())
