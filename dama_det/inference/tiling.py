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
:func:`predict_images_tiled` streams a sequence of images through one window batch, so
small images (one window each) share forwards too.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

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


def _cut(image: np.ndarray, tile: Tile,
         transform: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    arr = np.asarray(image[:, tile.y0 : tile.y1, tile.x0 : tile.x1], dtype=np.float32)
    return transform(arr) if transform is not None else arr


def _to_image_coords(tile: Tile, dets: Sequence[Detection]) -> list[Detection]:
    return [Detection((b[0] + tile.x0, b[1] + tile.y0, b[2] + tile.x0, b[3] + tile.y0), m,
                      float(s)) for b, m, s in dets]


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise DamaUserError(f"--batch must be >= 1, got {batch_size}")


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
    _check_batch_size(batch_size)
    out: list[tuple[Tile, list[Detection]]] = []
    with tqdm(total=len(tiles), desc=desc, disable=not progress, unit="tile",
              leave=False, delay=1.0) as bar:
        for i in range(0, len(tiles), batch_size):
            group = tiles[i : i + batch_size]
            results = _run_batch(predictor, [_cut(image, t, transform) for t in group])
            out.extend((t, _to_image_coords(t, dets)) for t, dets in zip(group, results))
            bar.update(len(group))
    return out


class ImageToTile(NamedTuple):
    """One image for :func:`predict_images_tiled`.

    Attributes:
        key: anything; handed back with the image's detections.
        image: ``(C, H, W)`` array (or sliceable array-like, e.g. a ``numpy.memmap``).
        transform: per-pixel transform of each ``(C, h, w)`` window (e.g. intensity
            scaling), or None.
    """

    key: Any
    image: np.ndarray
    transform: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass
class _OpenImage:
    """An image whose windows are (partly) in flight."""

    key: Any
    height: int
    width: int
    tiles: list[Tile]
    per_tile: list[tuple[Tile, list[Detection]]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.per_tile) == len(self.tiles)


def predict_images_tiled(
    images: Iterable[ImageToTile],
    predictor: TilePredictor,
    *,
    tile_size: int = 512,
    overlap: int = 64,
    batch_size: int = 1,
    merge_threshold: float = 0.5,
    progress: bool = False,
    desc: str = "windows",
) -> Iterator[tuple[Any, list[Detection]]]:
    """Predict a stream of images by sliding windows, ``batch_size`` windows per call.

    Windows are taken in order, image after image, so one predictor call may hold the
    last windows of one image and the first of the next (small images of one window
    each are batched too). Each image is merged and yielded as soon as its last window
    is predicted; at most ``batch_size`` windows and the images they belong to are held.
    With a predictor whose ``predict_batch`` equals one call per window (as
    :class:`~dama_det.inference.predictor.MaskRCNNTilePredictor`'s does, bit for bit),
    the result does not depend on ``batch_size``.

    Args:
        images: the images, read lazily (e.g. from a DataLoader).
        predictor: per-tile predictor (see :class:`TilePredictor`).
        tile_size: window side in pixels.
        overlap: minimum overlap between windows.
        batch_size: windows per predictor call (the last call may get fewer).
        merge_threshold: see :func:`predict_image_tiled`.
        progress: show a progress bar over windows.
        desc: progress bar label.

    Yields:
        ``(key, merged detections in image coordinates)`` per image, in input order.
    """
    _check_batch_size(batch_size)
    check_tiling(tile_size, overlap)
    open_images: deque[_OpenImage] = deque()
    batch: list[tuple[_OpenImage, Tile, np.ndarray]] = []
    with tqdm(total=0, desc=desc, disable=not progress, unit="window", leave=False,
              delay=1.0) as bar:

        def run_batch() -> None:
            results = _run_batch(predictor, [arr for _, _, arr in batch])
            for (job, tile, _), dets in zip(batch, results):
                job.per_tile.append((tile, _to_image_coords(tile, dets)))
            bar.update(len(batch))
            batch.clear()

        def finished() -> Iterator[tuple[Any, list[Detection]]]:
            while open_images and open_images[0].done:
                job = open_images.popleft()
                yield job.key, merge_tile_detections(job.per_tile, job.height, job.width,
                                                     threshold=merge_threshold)

        for item in images:
            if item.image.ndim != 3:
                raise DamaUserError(
                    f"expected a (C, H, W) image, got shape {tuple(item.image.shape)}")
            _, height, width = item.image.shape
            job = _OpenImage(item.key, height, width,
                             make_tile_grid(height, width, tile_size, overlap))
            open_images.append(job)
            bar.total += len(job.tiles)
            bar.refresh()
            for tile in job.tiles:
                batch.append((job, tile, _cut(item.image, tile, item.transform)))
                if len(batch) == batch_size:
                    run_batch()
                    yield from finished()
        if batch:
            run_batch()
        yield from finished()


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
    stream = predict_images_tiled(
        [ImageToTile(None, image, transform)], predictor, tile_size=tile_size,
        overlap=overlap, batch_size=batch_size, merge_threshold=merge_threshold,
        progress=progress, desc=desc)
    (_, dets), = stream
    return dets
