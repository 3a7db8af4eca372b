"""Intensity scaling of N-channel images to about [0, 1].

Two schemes, chosen by the config key ``INPUT.INTENSITY_SCALING``:

- ``"dtype_max"`` (default, as the paper): divide by the maximum of the stored integer
  type (uint8 -> /255, uint16 -> /65535). Float images are taken as already scaled.
- ``"percentile"``: per channel, map the ``low``/``high`` percentiles to 0/1 (like
  cellpose's ``normalize99``); values outside are not clipped.
- ``"none"``: raw intensities.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DamaUserError
from .tiff_io import read_tiff

SCALING_MODES = ("dtype_max", "percentile", "none")


def scale_by_dtype(image: np.ndarray, dtype: np.dtype | type | str) -> np.ndarray:
    """Divide by the maximum value of the integer type the image was stored with.

    Args:
        image: array of any shape, e.g. ``(C, H, W)``, raw intensities.
        dtype: the stored pixel type (``uint8``, ``uint16``, ``int16``, ``float32``,
            ``bool``...). Floating and bool types leave the values unchanged.

    Returns:
        float32 array of the same shape.
    """
    dtype = np.dtype(dtype)
    out = np.asarray(image, dtype=np.float32)
    if np.issubdtype(dtype, np.integer):
        return out / np.float32(np.iinfo(dtype).max)
    return out.copy() if out is image else out


def percentile_normalize(
    image: np.ndarray, low: float = 1.0, high: float = 99.8, eps: float = 1e-6
) -> np.ndarray:
    """Per-channel percentile normalisation: ``(x - p_low) / (p_high - p_low)``.

    Args:
        image: ``(C, H, W)`` (a 2-D ``(H, W)`` image is treated as one channel).
        low: lower percentile, mapped to 0.
        high: upper percentile, mapped to 1.
        eps: floor of the denominator, so a constant channel becomes 0, not NaN.

    Returns:
        float32 array of the input's shape.
    """
    if not 0.0 <= low < high <= 100.0:
        raise DamaUserError(
            f"INPUT.PERCENTILE_RANGE: need 0 <= low < high <= 100, got ({low}, {high})"
        )
    arr = np.asarray(image, dtype=np.float32)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"percentile_normalize expects (C, H, W), got shape {arr.shape}")
    flat = arr.reshape(arr.shape[0], -1)
    lo, hi = np.percentile(flat, [low, high], axis=1).astype(np.float32)  # (C,) each
    scale = np.maximum(hi - lo, np.float32(eps))
    out = (arr - lo[:, None, None]) / scale[:, None, None]
    return out[0] if squeeze else out


def scale_intensities(
    image: np.ndarray,
    mode: str,
    source_dtype: np.dtype | type | str,
    percentile_range: Sequence[float] = (1.0, 99.8),
) -> np.ndarray:
    """Scale an image as the config's ``INPUT.INTENSITY_SCALING`` says.

    Args:
        image: ``(C, H, W)`` raw intensities.
        mode: ``"dtype_max"``, ``"percentile"`` or ``"none"``.
        source_dtype: the pixel type stored in the file (for ``"dtype_max"``).
        percentile_range: ``(low, high)`` percentiles (for ``"percentile"``).

    Returns:
        float32 ``(C, H, W)``.

    Raises:
        DamaUserError: unknown mode.
    """
    mode = str(mode).lower()
    if mode == "dtype_max":
        return scale_by_dtype(image, source_dtype)
    if mode == "percentile":
        if len(percentile_range) != 2:
            raise DamaUserError(
                f"INPUT.PERCENTILE_RANGE must be (low, high), got {tuple(percentile_range)}"
            )
        low, high = (float(v) for v in percentile_range)
        return percentile_normalize(image, low, high)
    if mode == "none":
        return np.array(image, dtype=np.float32)
    raise DamaUserError(
        f"INPUT.INTENSITY_SCALING: unknown mode {mode!r}; choose one of {', '.join(SCALING_MODES)}"
    )


def read_scaled_image(
    path,
    mode: str = "dtype_max",
    percentile_range: Sequence[float] = (1.0, 99.8),
    expected_channels: int | None = None,
) -> np.ndarray:
    """Read a TIFF / OME-TIFF and scale it as :func:`scale_intensities` says.

    Args:
        path: the file.
        mode: ``"dtype_max"``, ``"percentile"`` or ``"none"``.
        percentile_range: ``(low, high)`` percentiles (for ``"percentile"``).
        expected_channels: if given, the channel count the file must have.

    Returns:
        float32 ``(C, H, W)``.

    Raises:
        DamaUserError: unreadable file, another channel count, or unknown mode.
    """
    tiff = read_tiff(path, expected_channels=expected_channels)
    return np.asarray(scale_intensities(tiff.image, mode, tiff.dtype, percentile_range),
                      dtype=np.float32)
