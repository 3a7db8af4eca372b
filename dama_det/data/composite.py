"""Colour composites of multi-channel images, as a fluorescence viewer shows them: each
channel is scaled between two intensity limits to [0, 1], tinted with its colour, and
the tinted channels are added.

One function (:func:`composite_rgb`) serves the synthetic dataset's preview
(:mod:`dama_det.data.preview`: marker colours by channel name, 30th-99.9th percentile
limits), the prediction overlays (:mod:`dama_det.inference.outputs`: colours by channel
position, 1st-99.8th percentiles of a subsample) and the reconstruction figures
(:mod:`dama_det.pretrain.visualize`: tab10 colours, 0 to the 99.5th percentile). It
works channel by channel, so a whole-slide image never needs a float copy of all its
channels at once.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: Viewer colours (RGB, 0-1) per marker name; unknown channels get a palette colour.
MARKER_COLOURS: dict[str, tuple[float, float, float]] = {
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

#: Saturated colours (RGB, 0-1) by channel position (the default markers' order) for
#: prediction overlays; further channels cycle.
OVERLAY_COLOURS = np.array(
    [
        [0.0, 0.35, 1.0],  # DAPI: blue
        [0.6, 0.6, 0.6],  # Histones: grey
        [0.0, 1.0, 0.0],  # NeuN: green
        [1.0, 0.0, 0.0],  # S100: red
        [1.0, 0.0, 1.0],  # Olig2: magenta
        [1.0, 1.0, 0.0],  # Iba1: yellow
        [0.0, 1.0, 1.0],  # RECA1: cyan
    ],
    dtype=np.float32,
)


def channel_colours(channel_names: Sequence[str]) -> np.ndarray:
    """``(C, 3)`` display colours for the given channel names (:data:`MARKER_COLOURS`)."""
    return np.array(
        [MARKER_COLOURS.get(n, _PALETTE[i % len(_PALETTE)]) for i, n in enumerate(channel_names)],
        np.float32,
    )


def cycled_colours(palette: Sequence[Sequence[float]], num_channels: int) -> np.ndarray:
    """``(C, 3)`` colours by channel position, cycling through ``palette``."""
    return np.array([palette[c % len(palette)] for c in range(num_channels)], np.float32)


def channel_limits(
    image: np.ndarray, low: float = 30.0, high: float = 99.9, *, max_pixels: int | None = None
) -> np.ndarray:
    """``(C, 2)`` per-channel ``(low, high)`` percentiles of a ``(C, H, W)`` image.

    Args:
        image: ``(C, H, W)`` array (any numeric dtype; an array-like sliced per channel).
        low, high: the percentiles.
        max_pixels: measure on a regular subsample of about this many pixels per channel
            (every ``sqrt(H * W / max_pixels)``-th row and column); None: every pixel.
    """
    limits = np.empty((image.shape[0], 2), np.float64)
    for c in range(image.shape[0]):
        channel = np.asarray(image[c])
        if max_pixels is not None:
            step = max(1, int(np.sqrt(channel.size / max_pixels)))
            channel = channel[::step, ::step]
        limits[c] = np.percentile(channel, [low, high])
    return limits


def composite_rgb(
    image: np.ndarray, colours: np.ndarray, limits: np.ndarray, *, clip: bool = True
) -> np.ndarray:
    """Additive colour composite of a multi-channel image.

    Args:
        image: ``(C, H, W)`` array (any numeric dtype).
        colours: ``(C, 3)`` RGB colour (0-1) of each channel.
        limits: ``(C, 2)`` intensities mapped to black and to full colour, per channel.
        clip: clip the sum of the tinted channels to [0, 1].

    Returns:
        ``(H, W, 3)`` float32; in [0, 1] with ``clip`` (else each channel contributes at
        most its colour).
    """
    rgb = np.zeros((*image.shape[1:], 3), np.float32)
    for c in range(image.shape[0]):
        lo, hi = float(limits[c][0]), float(limits[c][1])
        scaled = (np.asarray(image[c], np.float32) - lo) / max(hi - lo, 1e-6)
        np.clip(scaled, 0.0, 1.0, out=scaled)
        rgb += scaled[..., None] * np.asarray(colours[c], np.float32)
    return np.clip(rgb, 0.0, 1.0, out=rgb) if clip else rgb
