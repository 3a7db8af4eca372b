"""Sliding-window tiled prediction for images far larger than the training size.

The tiler is model-agnostic: it takes any per-tile predictor, a callable
``(C, h, w) float32 array -> list[Detection]`` (optionally with a
``predict_batch(list of arrays) -> list[list[Detection]]`` method for batching), so
the same code runs the Mask R-CNN predictor and simple stand-ins in tests.

Memory stays independent of the image size apart from the final label image: tiles
are cut, scaled and predicted one (or ``batch_size``) at a time, and every instance is
kept as a compact crop (integer box + local boolean mask), never as a full-image mask.
Overlap handling (edge rule, duplicate merging) lives in :mod:`.merge`, the data
types (:class:`Detection`, :class:`Tile`, :class:`TilePredictor`) in :mod:`.types`.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import DamaUserError
from .merge import merge_tile_detections
from .types import Detection, Tile, TilePredictor


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of windows of size ``tile`` covering ``[0, length)``.

    Windows are spread evenly so that neighbours overlap by at least ``overlap``
    pixels and the last window ends exactly at ``length`` (no padding needed).

    Args:
        length: image extent along one axis.
        tile: window size (a window shorter than ``tile`` is used if the image is).
        overlap: minimum overlap between consecutive windows, ``0 <= overlap < tile``.

    Returns:
        Sorted start offsets; ``[0]`` when ``length <= tile``.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    n = math.ceil((length - tile) / stride) + 1
    span = length - tile
    return [round(i * span / (n - 1)) for i in range(n)]


def check_tiling(tile_size: int, overlap: int) -> None:
    """Raise :class:`DamaUserError` unless ``16 <= tile_size`` and ``0 <= overlap < tile_size``."""
    if tile_size < 16:
        raise DamaUserError(f"--tile-size must be at least 16 pixels, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise DamaUserError(
            f"--overlap must be >= 0 and smaller than --tile-size ({tile_size}), got {overlap}"
        )


def make_tile_grid(height: int, width: int, tile_size: int, overlap: int) -> list[Tile]:
    """Cut an ``height x width`` image into overlapping windows, in raster order.

    Args:
        height: image height.
        width: image width.
        tile_size: window side (pixels).
        overlap: minimum overlap between neighbouring windows (pixels).

    Returns:
        The windows, row by row.
    """
    check_tiling(tile_size, overlap)
    ys = tile_starts(height, tile_size, overlap)
    xs = tile_starts(width, tile_size, overlap)
    th, tw = min(tile_size, height), min(tile_size, width)
    return [
        Tile(r, c, y0, x0, y0 + th, x0 + tw)
        for r, y0 in enumerate(ys)
        for c, x0 in enumerate(xs)
    ]


def _batches(tiles: Sequence[Tile], size: int) -> Iterator[Sequence[Tile]]:
    for i in range(0, len(tiles), size):
        yield tiles[i : i + size]


def _run_batch(predictor: TilePredictor, arrays: list[np.ndarray]) -> list[list[Detection]]:
    batch_fn = getattr(predictor, "predict_batch", None)
    if batch_fn is not None and len(arrays) > 1:
        return list(batch_fn(arrays))
    return [list(predictor(a)) for a in arrays]


def predict_tiles(
    image: np.ndarray,
    predictor: TilePredictor,
    tiles: Sequence[Tile],
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    batch_size: int = 1,
    progress: bool = False,
    desc: str = "tiles",
) -> list[tuple[Tile, list[Detection]]]:
    """Run ``predictor`` on each window and shift its detections to image coordinates.

    Args:
        image: ``(C, H, W)`` array or any array-like supporting ``image[:, y0:y1, x0:x1]``
            (e.g. a ``numpy.memmap``); only one batch of tiles is materialised at a time.
        predictor: per-tile predictor (see :class:`TilePredictor`).
        tiles: the windows, from :func:`make_tile_grid`.
        transform: applied to each ``(C, h, w)`` tile before prediction (e.g.
            intensity scaling); must be per-pixel so that tiles agree in overlaps.
        batch_size: tiles per predictor call (uses ``predictor.predict_batch``).
        progress: show a tqdm progress bar.
        desc: label of the progress bar.

    Returns:
        ``[(tile, detections in image coordinates), ...]`` in the order of ``tiles``.
    """
    if batch_size < 1:
        raise DamaUserError(f"--batch must be >= 1, got {batch_size}")
    out: list[tuple[Tile, list[Detection]]] = []
    with tqdm(total=len(tiles), desc=desc, disable=not progress, unit="tile",
              leave=False, delay=1.0) as bar:
        for group in _batches(tiles, batch_size):
            arrays = []
            for t in group:
                arr = np.asarray(image[:, t.y0 : t.y1, t.x0 : t.x1], dtype=np.float32)
                arrays.append(transform(arr) if transform is not None else arr)
            results = _run_batch(predictor, arrays)
            for t, dets in zip(group, results):
                shifted = [
                    Detection((b[0] + t.x0, b[1] + t.y0, b[2] + t.x0, b[3] + t.y0), m, float(s))
                    for b, m, s in dets
                ]
                out.append((t, shifted))
            bar.update(len(group))
    return out


def predict_image_tiled(
    image: np.ndarray,
    predictor: TilePredictor,
    *,
    tile_size: int = 512,
    overlap: int = 64,
    batch_size: int = 1,
    merge_threshold: float = 0.5,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool = False,
    desc: str = "tiles",
) -> list[Detection]:
    """Predict instances on a whole image by sliding windows, then merge overlaps.

    Args:
        image: ``(C, H, W)`` array (or sliceable array-like).
        predictor: per-tile predictor.
        tile_size: window side in pixels (use about the training size or larger).
        overlap: minimum overlap between windows; should exceed the largest object.
        batch_size: tiles per predictor call.
        merge_threshold: overlap (intersection over the smaller instance, measured
            inside the two windows' common area) above which detections from
            neighbouring windows are the same instance.
        transform: per-tile intensity transform.
        progress: show a progress bar.
        desc: progress bar label.

    Returns:
        Merged detections in image coordinates, in raster order of their boxes.
    """
    if image.ndim != 3:
        raise DamaUserError(f"expected a (C, H, W) image, got shape {tuple(image.shape)}")
    _, height, width = image.shape
    tiles = make_tile_grid(height, width, tile_size, overlap)
    per_tile = predict_tiles(image, predictor, tiles, transform=transform,
                             batch_size=batch_size, progress=progress, desc=desc)
    return merge_tile_detections(per_tile, height, width, threshold=merge_threshold)
